"""lane_seg_ros: the ROS 2 side of lane_seg: the node, message conversions, and the bag and play tools.

Thin glue around lane_seg_core: messages <-> arrays, parameters, QoS and threading; the per-frame work is
the core's LaneDetector, shared with `lane-seg predict`, `eval` and `bag`.
"""
