"""ROS messages <-> arrays: camera images in, lanes, masks, markers and overlays out (numpy, no cv_bridge)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Point32
from lane_seg.msg import Lane as LaneMsg
from lane_seg.msg import LaneArray
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from lane_seg_core.camera import CameraModel
from lane_seg_core.inference import Detection
from lane_seg_core.postprocess import Lane
from lane_seg_core.visualize import lane_colour

from .encodings import ImageError, pixels_to_rgb

def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (any encoding of lane_seg_ros.encodings) -> RGB uint8 [H,W,3]; a view of the data for rgb8."""
    return pixels_to_rgb(msg.data, int(msg.width), int(msg.height), int(msg.step), msg.encoding, msg.is_bigendian)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg, png) -> RGB uint8 [H,W,3]."""
    if len(msg.data) == 0:
        raise ImageError("empty compressed image (data has 0 bytes)")
    decoded = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise ImageError(f"format '{msg.format}': data ({len(msg.data)} bytes) could not be decoded as an image")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def array_to_image(array: np.ndarray, header: Header, encoding: str) -> Image:
    """uint8 [H,W] (mono8) or [H,W,3] (rgb8/bgr8) -> sensor_msgs/Image with the given header."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    msg = Image(header=header, height=array.shape[0], width=array.shape[1], encoding=encoding, is_bigendian=0)
    msg.step = array.shape[1] * (array.shape[2] if array.ndim == 3 else 1)
    msg.data = array.tobytes()
    return msg


def _points(xy: np.ndarray) -> list[Point32]:
    return [Point32(x=float(x), y=float(y), z=0.0) for x, y in xy]


def detection_to_lane_array(detection: Detection, header: Header, ground_frame_id: str = "") -> LaneArray:
    """A Detection -> lane_seg/LaneArray carrying the input image's header (processing_ms left 0)."""
    lanes = []
    for lane in detection.lanes:
        msg = LaneMsg(id=lane.id, position=lane.position, confidence=float(lane.confidence),
                      pixel_count=int(lane.pixel_count), points_image=_points(lane.points))
        if lane.ground_points is not None:
            msg.ground_frame_id = ground_frame_id
            msg.points_ground = _points(lane.ground_points)
        lanes.append(msg)
    width, height = detection.image_size
    return LaneArray(header=header, image_width=width, image_height=height, lanes=lanes)


def lane_markers(
    lanes: Sequence[LaneMsg], header: Header, image_size: tuple[int, int], camera: CameraModel | None = None,
    lifetime_s: float = 0.5, namespace: str = "lanes",
) -> MarkerArray:
    """One LINE_STRIP per lane, coloured by its place beside the vehicle, after a DELETEALL of the last frame's.

    Lanes with two or more ground points are drawn on the road in their ground frame. Others are drawn where the
    camera sees them: on the plane 1 m in front of the camera, in the image's (optical) frame, through the
    camera's calibration (lens distortion removed) when known and a nominal focal length of one image width
    otherwise.
    """
    width, height = image_size
    k = camera.k if camera is not None else np.array([[width, 0.0, width / 2.0], [0.0, width, height / 2.0],
                                                      [0.0, 0.0, 1.0]])
    markers = [Marker(header=header, ns=namespace, action=Marker.DELETEALL)]
    for lane in lanes:
        if len(lane.points_ground) >= 2:  # one point on the road draws no line: draw it where the camera sees it
            frame, points = lane.ground_frame_id, [Point(x=p.x, y=p.y, z=0.0) for p in lane.points_ground]
            line_width = 0.15  # metres on the road
        else:
            frame = header.frame_id
            pixels = np.array([(p.x, p.y) for p in lane.points_image], np.float64).reshape(-1, 2)
            if camera is not None:
                pixels = camera.undistort(pixels)
            rays = (pixels - k[:2, 2]) / np.diag(k)[:2]
            points = [Point(x=float(x), y=float(y), z=1.0) for x, y in rays]
            line_width = 0.005  # metres at 1 m from the camera
        if len(points) < 2:
            continue
        marker = Marker(header=Header(stamp=header.stamp, frame_id=frame), ns=namespace, id=lane.id,
                        type=Marker.LINE_STRIP, action=Marker.ADD, points=points)
        marker.pose.orientation.w = 1.0
        marker.scale.x = line_width
        r, g, b = (c / 255.0 for c in lane_colour(lane.position))
        marker.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
        marker.lifetime = Duration(sec=int(lifetime_s), nanosec=int(round((lifetime_s % 1) * 1e9)))
        markers.append(marker)
    return MarkerArray(markers=markers)


def lane_array_to_lanes(msg: LaneArray) -> list[Lane]:
    """lane_seg/LaneArray -> the core's Lane objects (points float32 [N,2]), e.g. to score or draw recorded lanes."""
    lanes = []
    for lane in msg.lanes:
        ground = np.array([(p.x, p.y) for p in lane.points_ground], np.float32).reshape(-1, 2)
        lanes.append(Lane(id=int(lane.id), points=np.array([(p.x, p.y) for p in lane.points_image], np.float32)
                          .reshape(-1, 2), confidence=float(lane.confidence), pixel_count=int(lane.pixel_count),
                          position=int(lane.position), ground_points=ground if len(ground) else None))
    return lanes
