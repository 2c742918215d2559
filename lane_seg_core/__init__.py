"""lane_seg_core: ROS-free lane instance segmentation (SegNet + discriminative loss)."""

__version__ = "0.1.0"
