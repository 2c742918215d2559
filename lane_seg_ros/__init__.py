"""lane_seg_ros: the ROS 2 node around lane_seg_core (rclpy glue only; the per-frame work lives in the core).

The node, its messages (msg/) and launch files land with the ROS issue; this package is the place for them.
"""
