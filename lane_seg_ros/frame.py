"""One camera frame's results as ROS messages: the one place the node and `lane-seg bag` build them.

`FramePipeline` is what a frame needs (the detector with its post-processing settings and ground plane, the camera
calibration, the ground frame); `frame_outputs` turns a Detection into the LaneArray, the instance mask and the
markers, all carrying the camera image's header.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lane_seg.msg import LaneArray
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from lane_seg_core.camera import CameraModel
from lane_seg_core.inference import Detection, LaneDetector

from .conversions import array_to_image, detection_to_lane_array, lane_markers


@dataclass(frozen=True)
class FrameOutputs:
    """What is published (or written to a bag) for one camera frame."""

    lanes: LaneArray
    instance_mask: Image
    markers: MarkerArray


@dataclass(frozen=True)
class FramePipeline:
    """The detector for a frame (post-processing settings, ground plane) and the camera it was calibrated for."""

    detector: LaneDetector
    ground_frame_id: str = ""
    camera: CameraModel | None = None  # places the markers; its size is checked against each frame

    def for_size(self, width: int, height: int) -> tuple[FramePipeline, str | None]:
        """This pipeline for a width x height frame, and a warning when the camera calibration does not fit it.

        A calibration for another image size would put the lanes in the wrong place on the road: the frame then gets
        neither ground points nor calibrated markers.
        """
        if self.camera is None or self.camera.fits(width, height):
            return self, None
        warning = (f"the camera calibration is for {self.camera.width}x{self.camera.height} images but the frame is "
                   f"{width}x{height}: lanes get no ground points and uncalibrated markers until they match")
        return FramePipeline(self.detector.with_ground_plane(None), "", None), warning


def frame_outputs(detection: Detection, header: Header, pipeline: FramePipeline, received: float) -> FrameOutputs:
    """A frame's LaneArray, instance mask (mono8) and markers, with its header.

    `received` (time.perf_counter()) is when lane_seg got the frame (the node: the message arrived; the bag tool:
    it was read from the bag); LaneArray.processing_ms counts from there to now, when the messages are ready.
    """
    lanes = detection_to_lane_array(detection, header, pipeline.ground_frame_id)
    mask = array_to_image(detection.instance_mask, header, "mono8")
    markers = lane_markers(lanes.lanes, header, detection.image_size, pipeline.camera)
    lanes.processing_ms = (time.perf_counter() - received) * 1e3
    return FrameOutputs(lanes, mask, markers)
