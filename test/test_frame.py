"""One frame's messages (lane_seg_ros/frame.py): what the node publishes and `lane-seg bag` writes for a Detection."""

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from lane_seg_core.camera import CameraModel  # noqa: E402
from lane_seg_core.inference import Detection  # noqa: E402
from lane_seg_core.postprocess import Lane  # noqa: E402
from lane_seg_ros.frame import FramePipeline, frame_outputs  # noqa: E402

HEADER = Header(stamp=Time(sec=1_800_000_000, nanosec=5), frame_id="front_camera_optical_frame")
K = [1000.0, 0.0, 640.0, 0.0, 1000.0, 360.0, 0.0, 0.0, 1.0]


def lane(position: int, x: float, lane_id: int = 0) -> Lane:
    points = np.array([[x, 719.0], [x + 0.3 * (360 - x), 400.0]], np.float32)
    return Lane(id=lane_id, points=points, confidence=0.9, pixel_count=100, position=position)


def detection(lanes: list[Lane]) -> Detection:
    for i, item in enumerate(lanes):
        item.id = i + 1
    mask = np.zeros((720, 1280), np.uint8)
    for item in lanes:
        mask[700:, int(item.points[0, 0])] = item.id
    return Detection(lanes, (1280, 720), mask, {"total": 1.0})


class NoNetwork:
    """frame_outputs never runs the detector; a pipeline needs one for with_ground_plane only."""

    def with_ground_plane(self, plane):
        return self


def colours(markers) -> dict[int, tuple[float, float, float]]:
    """Lane position (from the LaneArray order) -> marker colour."""
    return {m.id: (m.color.r, m.color.g, m.color.b) for m in markers.markers if m.action == Marker.ADD}


def test_a_lane_keeps_its_marker_colour_when_another_appears_further_left():
    pipeline = FramePipeline(NoNetwork(), "base_footprint", CameraModel(K))
    before = frame_outputs(detection([lane(-1, 500.0), lane(1, 800.0)]), HEADER, pipeline, time.perf_counter())
    after = frame_outputs(detection([lane(-2, 100.0), lane(-1, 500.0), lane(1, 800.0)]), HEADER, pipeline,
                          time.perf_counter())
    # ids shift (the new lane is id 1), colours follow the place beside the vehicle
    assert [item.id for item in after.lanes.lanes] == [1, 2, 3]
    by_position_before = {item.position: colours(before.markers)[item.id] for item in before.lanes.lanes}
    by_position_after = {item.position: colours(after.markers)[item.id] for item in after.lanes.lanes}
    assert by_position_after[-1] == by_position_before[-1] and by_position_after[1] == by_position_before[1]
    assert len(set(by_position_after.values())) == 3


def test_the_outputs_carry_the_header_and_processing_ms_counts_from_receipt():
    pipeline = FramePipeline(NoNetwork(), "base_footprint", None)
    received = time.perf_counter() - 0.25  # the frame arrived 250 ms ago
    outputs = frame_outputs(detection([lane(-1, 500.0), lane(1, 800.0)]), HEADER, pipeline, received)
    assert outputs.lanes.header == HEADER and outputs.instance_mask.header == HEADER
    assert all(m.header.stamp == HEADER.stamp for m in outputs.markers.markers)
    assert 250.0 <= outputs.lanes.processing_ms < 250.0 + 5_000.0
    assert (outputs.instance_mask.width, outputs.instance_mask.height, outputs.instance_mask.encoding) == \
        (1280, 720, "mono8")
    assert outputs.markers.markers[0].action == Marker.DELETEALL


def test_markers_without_ground_points_go_through_the_lens_model():
    """A lane drawn 1 m in front of the camera: the same ray as its undistorted pixels through K."""
    distorted = CameraModel(K, "plumb_bob", [-0.3, 0.1, 0.0, 0.0, 0.0], 1280, 720)
    found = detection([lane(-1, 200.0), lane(1, 1100.0)])
    rays = frame_outputs(found, HEADER, FramePipeline(NoNetwork(), "", distorted), time.perf_counter()).markers
    pinhole = frame_outputs(found, HEADER, FramePipeline(NoNetwork(), "", CameraModel(K)), time.perf_counter()).markers
    for got, plain, item in zip(rays.markers[1:], pinhole.markers[1:], found.lanes):
        expected = (distorted.undistort(item.points) - [640.0, 360.0]) / 1000.0
        np.testing.assert_allclose([(p.x, p.y) for p in got.points], expected, atol=1e-5)
        assert all(p.z == 1.0 for p in got.points) and got.header.frame_id == HEADER.frame_id
        assert np.abs(np.array([(p.x, p.y) for p in got.points]) - [(p.x, p.y) for p in plain.points]).max() > 0.01


def test_a_calibration_for_another_image_size_is_set_aside_with_a_reason():
    pipeline = FramePipeline(NoNetwork(), "base_footprint", CameraModel(K, width=1920, height=1080))
    same, problem = pipeline.for_size(1920, 1080)
    assert same is pipeline and problem is None
    other, problem = pipeline.for_size(1280, 720)
    assert other.camera is None and other.ground_frame_id == ""
    assert problem == ("the camera calibration is for 1920x1080 images but the frame is 1280x720: lanes get no "
                       "ground points and uncalibrated markers until they match")


def test_a_lane_with_one_point_on_the_road_is_still_drawn_where_the_camera_sees_it():
    found = detection([lane(-1, 200.0), lane(1, 1100.0)])
    found.lanes[0].ground_points = np.array([[8.0, 1.7], [12.0, 1.8]], np.float32)
    found.lanes[1].ground_points = np.array([[30.0, -1.9]], np.float32)  # the rest of it lies above the horizon
    markers = frame_outputs(found, HEADER, FramePipeline(NoNetwork(), "base_footprint", CameraModel(K)),
                            time.perf_counter()).markers
    strips = {m.id: m for m in markers.markers if m.type == Marker.LINE_STRIP}
    assert sorted(strips) == [1, 2]
    assert strips[1].header.frame_id == "base_footprint" and all(p.z == 0.0 for p in strips[1].points)
    assert strips[2].header.frame_id == HEADER.frame_id and all(p.z == 1.0 for p in strips[2].points)
