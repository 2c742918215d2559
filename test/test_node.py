"""The ROS 2 node end to end: the real node process and a probe node talking over real Fast-DDS.

One node process serves most tests (started once for the module); a second one in namespace /compressed takes
CompressedImage input; start-up failures each start a process that must exit non-zero with its reason.
Frames are synthetic 1280x720 road scenes; the node's answers are compared with the core's LaneDetector run here
on the same pixels, and its ego lanes with the scenes' ground truth.
"""

import itertools
import re
import signal
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed: make venv")
pytest.importorskip("lane_seg.msg", reason="lane_seg messages are not built: make venv")

import torch  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from lane_seg.msg import LaneArray  # noqa: E402
from lane_seg_core.camera import CameraModel  # noqa: E402
from lane_seg_core.builtin import BUILTIN_CHECKPOINT  # noqa: E402
from lane_seg_core.ground import GroundPlane  # noqa: E402
from lane_seg_core.inference import LaneDetector  # noqa: E402
from lane_seg_core.synth import render_scene, sample_frame  # noqa: E402
from lane_seg_core.tusimple import H_SAMPLES  # noqa: E402
from lane_seg_ros.conversions import array_to_image  # noqa: E402
from lane_seg_ros.encodings import pixels_to_rgb  # noqa: E402
from ros_helpers import NodeProcess, Probe, release_domain_id, reserve_domain_id, ros_env  # noqa: E402

pytestmark = pytest.mark.slow

SEED = 20261125  # held-out synthetic frames (the built-in model never saw them)
FRAMES = (0, 3, 6)  # 3 or 4 lanes each, ego lanes within 10 px of the truth for the built-in model
FRAME_ID = "front_camera_optical_frame"
START_S = 90.0  # the node's start-up (torch import, model, warm-up) on a busy 2-core machine
ANSWER_S = 30.0  # one frame's answer, resent every RESEND_S in case a best-effort sample was lost
RESEND_S = 5.0
NODE = "/lane_seg"
DIAGNOSTIC_KEYS = {"rate (Hz)", "latency p50 (ms)", "latency p95 (ms)", "frames processed", "frames dropped",
                   "bad frames", "bad frames in period", "last bad frame", "overlays published", "device", "model",
                   "input topic"}

_stamps = itertools.count(1)
_scenes = {}


def next_stamp() -> Time:
    n = next(_stamps)
    return Time(sec=1_790_000_000 + n, nanosec=1000 * n)


def scene(index):
    """(SceneParams, BGR uint8 [720,1280,3], tuSimple lane labels) of held-out frame `index`."""
    if index not in _scenes:
        params = sample_frame(SEED, index)
        _scenes[index] = (params, *render_scene(params))
    return _scenes[index]


def as_encoding(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """The pixels a camera publishing `encoding` sends: [H,W,C] or [H,W] (yuv422: UYVY, [H,W,2])."""
    if encoding == "yuv422":  # usb_cam's default: U Y0 V Y1 per pixel pair, video-range BT.601
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        h, w = bgr.shape[:2]
        u = np.repeat(i420[h:h + h // 4].reshape(h // 2, w // 2), 2, axis=0)
        v = np.repeat(i420[h + h // 4:].reshape(h // 2, w // 2), 2, axis=0)
        return np.stack([u, i420[:h, 0::2], v, i420[:h, 1::2]], axis=2).reshape(h, w, 2)
    if encoding == "bayer_rggb8":  # a raw colour sensor
        mosaic = np.empty(bgr.shape[:2], np.uint8)
        for (dy, dx), channel in (((0, 0), 2), ((0, 1), 1), ((1, 0), 1), ((1, 1), 0)):
            mosaic[dy::2, dx::2] = bgr[dy::2, dx::2, channel]
        return mosaic
    conversion = {"bgr8": None, "rgb8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_BGR2RGBA, "bgra8": cv2.COLOR_BGR2BGRA,
                  "mono8": cv2.COLOR_BGR2GRAY}[encoding]
    return bgr if conversion is None else cv2.cvtColor(bgr, conversion)


def frame_msg(index: int = 0, encoding: str = "bgr8") -> Image:
    header = Header(stamp=next_stamp(), frame_id=FRAME_ID)
    return array_to_image(as_encoding(scene(index)[1], encoding), header, encoding)


def expected_rgb(index: int = 0, encoding: str = "bgr8") -> np.ndarray:
    """What the core decodes from the frame the camera sent (lane_seg_ros.encodings)."""
    msg = frame_msg(index, encoding)
    return pixels_to_rgb(bytes(msg.data), msg.width, msg.height, msg.step, encoding)


def stamp_of(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def points(lane_msg) -> np.ndarray:
    return np.array([[p.x, p.y] for p in lane_msg.points_image], dtype=np.float32).reshape(-1, 2)


def image_array(msg: Image) -> np.ndarray:
    """uint8 [H,W] (mono8) or [H,W,C] of an Image without row padding."""
    channels = msg.step // msg.width
    array = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, channels)
    return array[:, :, 0] if channels == 1 else array


def ask(io, msg, publisher=None, inbox=None, timeout: float = ANSWER_S):
    """Publish a frame and return the LaneArray stamped like it (resent now and then: best effort may lose one)."""
    publisher, inbox = publisher or io.image_pub, inbox or io.lanes
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert io.node.alive(), f"the node died (exit {io.node.process.returncode}):\n{io.node.output()[-3000:]}"
        publisher.publish(msg)
        answer = inbox.with_stamp(msg.header.stamp, min(RESEND_S, max(deadline - time.monotonic(), 0.1)))
        if answer is not None:
            return answer
    raise AssertionError(
        f"no lanes for the frame stamped {stamp_of(msg)} within {timeout} s:\n{io.node.output()[-3000:]}")


def assert_same_lanes(msg: LaneArray, expected, tolerance: float = 1.0) -> None:
    """The node's lanes are the core's lanes for the same pixels."""
    assert [(lane.id, lane.position) for lane in msg.lanes] == [(lane.id, lane.position) for lane in expected.lanes]
    for got, want in zip(msg.lanes, expected.lanes):
        assert points(got).shape == want.points.shape
        np.testing.assert_allclose(points(got), want.points, atol=tolerance)
        assert got.pixel_count == want.pixel_count and got.confidence == pytest.approx(want.confidence, abs=1e-4)


def markers_for(io, sent: Image) -> MarkerArray | None:
    return io.markers.wait_for(lambda m: m.markers and m.markers[0].header.stamp == sent.header.stamp, ANSWER_S)


def ours(msg: DiagnosticArray, topic: str = "/image") -> dict | None:
    """The key/values (plus 'level' and 'message') of our node's status in a DiagnosticArray, None if absent."""
    for status in msg.status:
        values = {kv.key: kv.value for kv in status.values}
        if values.get("input topic") == topic:
            return dict(values, level=status.level, message=status.message, name=status.name,
                        hardware_id=status.hardware_id)
    return None


def report_after(io, wall_time: float, timeout: float = ANSWER_S, topic: str = "/image") -> dict:
    """Our node's first status report made after `wall_time` (time.time()): it counts everything done before."""
    def later(msg):
        return ours(msg, topic) is not None and msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 > wall_time

    msg = io.diagnostics.wait_for(later, timeout)
    assert msg is not None, f"no /diagnostics within {timeout} s:\n{io.node.output()[-2000:]}"
    return ours(msg, topic)


def diagnostics_where(io, predicate, timeout: float = ANSWER_S) -> dict:
    msg = io.diagnostics.wait_for(lambda m: (v := ours(m)) is not None and predicate(v), timeout)
    assert msg is not None, f"no matching /diagnostics within {timeout} s:\n{io.node.output()[-2000:]}"
    return ours(msg)


# -------------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    domain_id = reserve_domain_id()
    folder = tmp_path_factory.mktemp("ros")
    yield SimpleNamespace(domain_id=domain_id, dir=folder, env=ros_env(domain_id, folder / "log"))
    release_domain_id(domain_id)


@pytest.fixture(scope="module")
def probe(ros):
    probe = Probe(ros.domain_id)
    yield probe
    probe.close()


@pytest.fixture(scope="module")
def detector():
    """The core's detector on the CPU, to compare the node's answers with."""
    return LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cpu")


@pytest.fixture(scope="module")
def io(ros, probe):
    """The node (device cpu, 1 torch thread, a report every 0.5 s) and the probe's publishers and subscriptions."""
    node = NodeProcess(["-p", "device:=cpu", "-p", "threads:=1", "-p", "diagnostics_period:=0.5"], ros.env, ros.dir)
    io = SimpleNamespace(node=node, image_pub=probe.publisher(Image, "/image"),
                         camera_info_pub=probe.publisher(CameraInfo, "/camera_info"))
    io.lanes, _ = probe.subscribe(LaneArray, "/lanes")
    io.mask, _ = probe.subscribe(Image, "/lanes/instance_mask")
    io.markers, _ = probe.subscribe(MarkerArray, "/lanes/markers")
    io.diagnostics, _ = probe.subscribe(DiagnosticArray, "/diagnostics", depth=100)
    try:
        ready = probe.wait_until(lambda: io.image_pub.get_subscription_count() > 0 or not node.alive(), START_S)
        assert ready and node.alive(), f"the node did not start within {START_S} s:\n{node.output()[-3000:]}"
        yield io
    finally:
        node.kill()


# -------------------------------------------------------------------------------------------------------- frames


def test_each_frame_is_answered_with_its_header_lanes_mask_and_markers(io, detector):
    colours = {}
    for index in FRAMES:
        sent = frame_msg(index)
        lanes = ask(io, sent)
        expected = detector(expected_rgb(index))

        assert lanes.header.frame_id == FRAME_ID and lanes.image_width == 1280 and lanes.image_height == 720
        assert 0 < lanes.processing_ms < 60_000
        assert len(lanes.lanes) >= 2
        assert_same_lanes(lanes, expected)
        positions = [lane.position for lane in lanes.lanes]
        assert positions == sorted(positions) and 0 not in positions and -1 in positions and 1 in positions
        truth = np.array(scene(index)[2], dtype=np.float64)
        rows = np.array(H_SAMPLES, dtype=np.float64)
        for lane in lanes.lanes:
            xy = points(lane)
            assert np.all(np.diff(xy[:, 1]) < 0) and xy[0, 1] <= 719.5  # from the bottom of the image upwards
            assert np.all((xy[:, 0] >= -0.5) & (xy[:, 0] <= 1279.5) & (xy[:, 1] >= 0))
            if abs(lane.position) == 1:  # the ego lanes lie on ground-truth lanes (mean error at tuSimple rows)
                x = np.interp(rows, xy[::-1, 1], xy[::-1, 0])
                seen = (rows >= xy[-1, 1]) & (rows <= xy[0, 1])
                errors = [np.abs(x - gt)[seen & (gt >= 0)].mean() for gt in truth if (seen & (gt >= 0)).sum() >= 5]
                assert min(errors) < 20, (index, lane.position, errors)

        mask_msg = io.mask.with_stamp(sent.header.stamp, ANSWER_S)
        assert mask_msg is not None, "no instance mask for the frame"
        assert (mask_msg.encoding, mask_msg.width, mask_msg.height, mask_msg.step) == ("mono8", 1280, 720, 1280)
        assert mask_msg.header.frame_id == FRAME_ID
        mask = image_array(mask_msg)
        assert set(np.unique(mask).tolist()) == {0} | {lane.id for lane in lanes.lanes}
        assert np.mean(mask == expected.instance_mask) > 0.999

        markers = markers_for(io, sent)
        assert markers is not None, "no markers for the frame"
        first, *strips = markers.markers
        assert first.action == Marker.DELETEALL
        assert [m.id for m in strips] == [lane.id for lane in lanes.lanes]
        for marker in strips:
            assert marker.type == Marker.LINE_STRIP and marker.action == Marker.ADD and len(marker.points) >= 2
            assert marker.header.stamp == sent.header.stamp and marker.header.frame_id == FRAME_ID
            assert marker.scale.x > 0 and marker.color.a == 1.0 and marker.pose.orientation.w == 1.0
            colour = (marker.color.r, marker.color.g, marker.color.b)
            assert colours.setdefault(marker.id, colour) == colour, "a lane id changed colour between frames"
    assert len(set(colours.values())) == len(colours), "two lane ids share a colour"


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "rgba8", "bgra8", "mono8", "yuv422", "bayer_rggb8"])
def test_every_supported_encoding_gives_the_cores_lanes(io, detector, encoding):
    lanes = ask(io, frame_msg(0, encoding))
    assert len(lanes.lanes) >= 2
    assert_same_lanes(lanes, detector(expected_rgb(0, encoding)))


def slow_checkpoint(path):
    """A checkpoint whose detector takes a few hundred ms per frame on a CPU: a wider SegNet at 512x256 input."""
    from dataclasses import replace

    from lane_seg_core.checkpoint import load_checkpoint, save_checkpoint
    from lane_seg_core.model import ModelConfig, SegNet

    builtin = load_checkpoint(BUILTIN_CHECKPOINT)
    config = ModelConfig(width=0.25)
    torch.manual_seed(0)
    return save_checkpoint(replace(builtin, model_config=config, state_dict=SegNet.from_config(config).state_dict(),
                                   preprocessing=replace(builtin.preprocessing, input_width=512, input_height=256)),
                           path)


@pytest.fixture(scope="module")
def slow(ros, probe):
    """A node in namespace /slow whose detector is slower than a burst of frames arrives."""
    args = ["-p", f"checkpoint:={slow_checkpoint(ros.dir / 'slow.pt')}", "-p", "device:=cpu", "-p", "threads:=1",
            "-p", "diagnostics_period:=0.5", "-r", "__ns:=/slow"]
    node = NodeProcess(args, ros.env, ros.dir, name="slow")
    io = SimpleNamespace(node=node, image_pub=probe.publisher(Image, "/slow/image", depth=10))
    io.lanes, _ = probe.subscribe(LaneArray, "/slow/lanes")
    io.diagnostics, _ = probe.subscribe(DiagnosticArray, "/diagnostics", depth=100)
    try:
        ready = probe.wait_until(lambda: io.image_pub.get_subscription_count() > 0 or not node.alive(), START_S)
        assert ready and node.alive(), f"the slow node did not start within {START_S} s:\n{node.output()[-3000:]}"
        yield io
    finally:
        node.kill()


def test_the_newest_frame_of_a_burst_is_answered_and_the_stale_ones_are_skipped(slow):
    """A FIFO node would answer all 8 frames in order, one forward pass after another; this one answers the last soon."""
    one_frame_ms = ask(slow, frame_msg(0)).processing_ms  # receipt to publish of a frame that waited for nothing
    before = report_after(slow, time.time(), topic="/slow/image")
    # 640x360 frames (8 of them fit Fast-DDS's shared memory at once), made before sending: the burst takes ~0.1 s
    burst = [array_to_image(cv2.resize(scene(i % 2)[1], (640, 360), interpolation=cv2.INTER_AREA),
                            Header(stamp=next_stamp(), frame_id=FRAME_ID), "bgr8") for i in range(8)]
    for msg in burst:
        slow.image_pub.publish(msg)
        time.sleep(0.01)
    last = slow.lanes.with_stamp(burst[-1].header.stamp, ANSWER_S)
    assert last is not None, f"the newest frame of the burst was not answered:\n{slow.node.output()[-2000:]}"
    answered = [i for i, msg in enumerate(burst) if slow.lanes.with_stamp(msg.header.stamp, 0) is not None]
    after = report_after(slow, time.time(), topic="/slow/image")
    processed = int(after["frames processed"]) - int(before["frames processed"])
    dropped = int(after["frames dropped"]) - int(before["frames dropped"])
    print(f"one frame {one_frame_ms:.0f} ms; burst of 8: answered {answered}, {processed} processed, {dropped} dropped,"
          f" the last answered {last.processing_ms:.0f} ms after receipt")
    # the frame taken while the node was idle, and the newest; every one between was replaced before it was taken
    assert answered[-1] == 7 and len(answered) <= 2, answered
    assert processed == len(answered) and dropped >= 1
    # the newest waited at most for the frame in hand: about two forward passes, not seven
    assert last.processing_ms < 4 * one_frame_ms, (last.processing_ms, one_frame_ms)
    assert slow.node.alive()


# -------------------------------------------------------------------------------------------------------- overlay


def test_the_overlay_is_drawn_only_while_someone_subscribes(io, probe):
    ask(io, frame_msg(0))
    before = report_after(io, time.time())
    ask(io, frame_msg(3))
    after = report_after(io, time.time())
    assert int(after["frames processed"]) > int(before["frames processed"])
    assert after["overlays published"] == before["overlays published"], "an overlay was drawn for nobody"

    overlays, subscription = probe.subscribe(Image, "/lanes/overlay", depth=5)
    try:
        assert probe.wait_until(lambda: subscription.get_publisher_count() > 0, ANSWER_S)
        overlay = None
        deadline = time.monotonic() + ANSWER_S
        while overlay is None and time.monotonic() < deadline:  # until the node's publisher has matched us too
            sent = frame_msg(0)
            lanes = ask(io, sent)
            overlay = overlays.with_stamp(sent.header.stamp, 2.0)
        assert overlay is not None, "no overlay while subscribed"
        assert (overlay.encoding, overlay.width, overlay.height) == ("rgb8", 1280, 720)
        assert overlay.header.frame_id == FRAME_ID
        drawn, rgb = image_array(overlay), expected_rgb(0)
        changed = np.any(drawn != rgb, axis=2)
        assert 0.001 < changed.mean() < 0.5, "the overlay should be the image with lanes drawn on it"
        x, y = np.round(points(lanes.lanes[0])[len(lanes.lanes[0].points_image) // 2]).astype(int)
        assert changed[y, x], "no drawing on the first lane's polyline"

        [result] = probe.set_parameters(NODE, {"publish_overlay": False})
        assert result.successful, result.reason
        sent = frame_msg(0)
        ask(io, sent)
        assert overlays.with_stamp(sent.header.stamp, 2.0) is None, "overlay published with publish_overlay false"
    finally:
        probe.set_parameters(NODE, {"publish_overlay": True})
        probe.node.destroy_subscription(subscription)


# -------------------------------------------------------------------------------------------------------- bad frames


def bad(encoding="bgr8", width=1280, height=720, step=None, size=None) -> Image:
    channels = {"bgr8": 3, "rgb8": 3, "mono8": 1, "32FC1": 4}[encoding]
    step = width * channels if step is None else step
    size = step * height if size is None else size
    return Image(header=Header(stamp=next_stamp(), frame_id=FRAME_ID), encoding=encoding, width=width, height=height,
                 step=step, data=bytes(size))


BAD_FRAMES = {
    "unknown encoding": (lambda: bad("32FC1"), "encoding '32FC1' is not supported"),
    "short data": (lambda: bad(size=1000), "data has 1000 bytes, expected step*height=2764800"),
    "step too small": (lambda: bad("rgb8", step=1280, size=1280 * 720),
                       "step=1280 is less than the 3840 bytes a row of 1280 rgb8 pixels needs"),
    "0x0": (lambda: bad(width=0, height=0), "empty image"),
    "huge with little data": (lambda: bad("mono8", width=100_000, height=100_000, size=64), "larger than"),
}


@pytest.mark.parametrize("kind", BAD_FRAMES)
def test_a_bad_frame_is_skipped_counted_and_reported_and_the_next_good_one_answered(io, kind):
    make, reason = BAD_FRAMES[kind]
    bad_before = int(report_after(io, time.time())["bad frames"])
    bad_msg = make()
    report = None
    deadline = time.monotonic() + ANSWER_S
    while report is None and time.monotonic() < deadline:  # resent in case best effort lost it
        io.image_pub.publish(bad_msg)
        msg = io.diagnostics.wait_for(
            lambda m: (v := ours(m)) is not None and int(v["bad frames"]) > bad_before, RESEND_S)
        report = ours(msg) if msg is not None else None
    assert report is not None, f"the bad frame was not counted:\n{io.node.output()[-2000:]}"
    assert reason in report["last bad frame"]
    assert report["level"] == DiagnosticStatus.WARN and "bad frames" in report["message"]

    good = frame_msg(0)
    lanes = ask(io, good)
    assert stamp_of(lanes) == stamp_of(good) and len(lanes.lanes) >= 2
    assert io.lanes.with_stamp(bad_msg.header.stamp, 0) is None, "a bad frame was answered"
    assert io.node.alive()


def test_bad_frame_warnings_name_the_topic_and_the_problem_and_are_throttled(io):
    """Bad frames for a little over one throttle period: each is counted, but at most two are logged."""
    from lane_seg_ros.node import WARN_EVERY_S

    log_start = len(io.node.stderr())
    bad_before = int(report_after(io, time.time())["bad frames"])
    sent, started = 0, time.monotonic()
    while time.monotonic() - started < WARN_EVERY_S + 0.5:
        io.image_pub.publish(bad(size=1000))
        sent += 1
        time.sleep(0.25)
    report = diagnostics_where(io, lambda v: int(v["bad frames"]) >= bad_before + sent - 2)  # best effort may lose one
    warnings = [line for line in io.node.stderr()[log_start:].splitlines() if "bad frame on /image skipped:" in line]
    assert 1 <= len(warnings) <= 2, (sent, warnings)
    assert all("WARN" in line and "data has 1000 bytes, expected step*height=2764800" in line for line in warnings)
    times = [float(re.search(r"\[(\d+\.\d+)\]", line).group(1)) for line in warnings]
    assert all(b - a >= WARN_EVERY_S - 0.1 for a, b in zip(times, times[1:])), f"not throttled: {warnings}"
    assert int(report["bad frames"]) - bad_before <= sent


# -------------------------------------------------------------------------------------------------------- parameters


def test_run_time_parameters_change_the_next_frame(io, probe, detector):
    try:
        results = probe.set_parameters(NODE, {"max_lanes": 1, "lane_threshold": 0.8})
        assert all(r.successful for r in results), [r.reason for r in results]
        lanes = ask(io, frame_msg(0))
        assert_same_lanes(lanes, detector.with_settings(max_lanes=1, lane_threshold=0.8)(expected_rgb(0)))
        assert len(lanes.lanes) == 1
    finally:
        results = probe.set_parameters(NODE, {"max_lanes": detector.post.max_lanes,
                                              "lane_threshold": detector.post.lane_threshold})
    assert all(r.successful for r in results)
    assert_same_lanes(ask(io, frame_msg(0)), detector(expected_rgb(0)))


REJECTED = [
    ({"lane_threshold": 1.0}, "PostprocessConfig.lane_threshold must be in (0, 1), got 1.0"),
    ({"lane_threshold": 1.5}, "lane_threshold out of range Min: 0.0, Max: 1.0"),
    ({"bandwidth": 0.0}, "PostprocessConfig.bandwidth must be > 0, got 0.0"),
    ({"min_pixels": 0}, "min_pixels out of range. Min: 1"),
    ({"max_lanes": 300}, "max_lanes out of range. Min: 1, Max: 255"),
    ({"polyline_step": 0.25}, "polyline_step out of range Min: 0.5"),
    ({"ground.height": 0.0}, "ground.height must be in (0, 100] m, got 0.0"),
    ({"ground.pitch": 1.6}, "ground.pitch out of range"),
    ({"ground.intrinsics": [0.0] * 9}, "ground.intrinsics: fx and fy must be > 0 px"),
    ({"ground.homography": [1.0, 2.0]}, "ground.homography must be 9 values"),
    ({"checkpoint": "other.pt"}, "checkpoint is read at start-up: changing it requires a restart"),
    ({"device": "cpu"}, "device is read at start-up: changing it requires a restart"),
    ({"threads": 2}, "threads is read at start-up: changing it requires a restart"),
    ({"use_compressed": True}, "use_compressed is read at start-up: changing it requires a restart"),
    ({"qos.reliability": "reliable"}, "qos.reliability is read at start-up: changing it requires a restart"),
    ({"qos.depth": 5}, "qos.depth is read at start-up: changing it requires a restart"),
    ({"max_lanes": 2.5}, "max_lanes must be an integer, got the double 2.5"),
    ({"lane_threshold": "high"}, "lane_threshold must be a double (a number with a decimal point, e.g. 0.8), got the "
                                 "string 'high'"),
    ({"ground.enabled": 1}, "ground.enabled must be true or false, got the integer 1"),
]


@pytest.mark.parametrize("change, reason", REJECTED, ids=[f"{n}={v}" for c, _ in REJECTED for n, v in c.items()])
def test_invalid_or_start_up_only_parameters_are_refused_with_the_reason(io, probe, change, reason):
    [result] = probe.set_parameters(NODE, change)
    assert not result.successful
    assert reason in result.reason


def test_refused_parameters_left_the_settings_alone(io, detector):
    assert_same_lanes(ask(io, frame_msg(0)), detector(expected_rgb(0)))


def lanes_with_ground(io, info, answer_s=ANSWER_S):
    """Publish camera_info with each frame until a frame's lanes all have ground points; the last answer."""
    lanes, sent = None, None
    deadline = time.monotonic() + answer_s
    while time.monotonic() < deadline:  # camera_info is best effort: send it with every try
        io.camera_info_pub.publish(info)
        sent = frame_msg(0)
        lanes = ask(io, sent)
        if lanes.lanes and all(lane.points_ground for lane in lanes.lanes):
            break
    return lanes, sent


PLUMB_BOB = [-0.08, 0.02, 0.0005, -0.0003, 0.0]  # k1 k2 p1 p2 k3: a mild barrel distortion


def test_ground_points_from_camera_info_with_lens_distortion_removed(io, probe, detector):
    params, _, _ = scene(0)
    camera = params.camera
    k = [camera.focal, 0.0, camera.cx, 0.0, camera.focal, camera.cy, 0.0, 0.0, 1.0]
    info = CameraInfo(header=Header(frame_id=FRAME_ID), width=1280, height=720, k=k, distortion_model="plumb_bob",
                      d=PLUMB_BOB)
    results = probe.set_parameters(NODE, {"ground.enabled": True, "ground.height": camera.height,
                                          "ground.pitch": camera.pitch})
    try:
        assert all(r.successful for r in results), [r.reason for r in results]
        lanes, sent = lanes_with_ground(io, info)
        assert lanes is not None and all(lane.points_ground for lane in lanes.lanes), "no ground points"
        model = CameraModel(k, "plumb_bob", PLUMB_BOB, 1280, 720)
        expected = detector.with_ground_plane(GroundPlane.from_camera(model, camera.height, camera.pitch))(
            expected_rgb(0))
        pinhole = detector.with_ground_plane(GroundPlane.from_camera(k, camera.height, camera.pitch))(expected_rgb(0))
        assert_same_lanes(lanes, expected)
        for lane, want, without in zip(lanes.lanes, expected.lanes, pinhole.lanes):
            ground = np.array([[p.x, p.y] for p in lane.points_ground], dtype=np.float32)
            assert lane.ground_frame_id == "base_footprint"
            np.testing.assert_allclose(ground, want.ground_points, atol=1e-3)
            assert np.all(ground[:, 0] > 0) and np.all(ground[:, 0] <= 80.0 + 1e-3)
            if abs(lane.position) == 1:  # the ego lanes start a few metres ahead, half a lane width left and right
                assert 1.0 < ground[0, 0] < 10.0 and 0.3 < lane.position * -ground[0, 1] < 3.0
                n = min(len(ground), len(without.ground_points))  # the distortion moves them (D is used)
                assert np.abs(ground[:n] - without.ground_points[:n]).max() > 0.05
        markers = markers_for(io, sent)
        assert markers is not None and all(m.header.frame_id == "base_footprint" for m in markers.markers[1:])
    finally:
        probe.set_parameters(NODE, {"ground.enabled": False})
    assert not any(lane.points_ground for lane in ask(io, frame_msg(0)).lanes)


def test_a_camera_info_for_another_image_size_is_not_used_and_says_so(io, probe):
    params, _, _ = scene(0)
    camera = params.camera
    scale = 1.5  # a 1920x1080 calibration of the same camera
    k = [camera.focal * scale, 0.0, camera.cx * scale, 0.0, camera.focal * scale, camera.cy * scale, 0.0, 0.0, 1.0]
    info = CameraInfo(header=Header(frame_id=FRAME_ID), width=1920, height=1080, k=k)
    log_start = len(io.node.stderr())
    results = probe.set_parameters(NODE, {"ground.enabled": True, "ground.height": camera.height,
                                          "ground.pitch": camera.pitch})
    try:
        assert all(r.successful for r in results), [r.reason for r in results]
        expected = "the camera calibration is for 1920x1080 images but the frame is 1280x720"
        deadline = time.monotonic() + ANSWER_S
        while expected not in io.node.stderr()[log_start:] and time.monotonic() < deadline:
            io.camera_info_pub.publish(info)
            lanes = ask(io, frame_msg(0))
            assert not any(lane.points_ground for lane in lanes.lanes), "a calibration for another size was used"
        warning = [line for line in io.node.stderr()[log_start:].splitlines() if expected in line]
        assert warning and "WARN" in warning[0] and "/camera_info" in warning[0], io.node.stderr()[log_start:]
        assert io.node.alive()
    finally:
        probe.set_parameters(NODE, {"ground.enabled": False})


# -------------------------------------------------------------------------------------------------------- diagnostics


def test_diagnostics_report_rate_latency_counts_device_and_model(io):
    before = report_after(io, time.time())
    sent = frame_msg(0)
    ask(io, sent)
    answers = sum(msg.header.stamp == sent.header.stamp for msg in io.lanes.messages)  # one per copy that arrived
    report = report_after(io, time.time())
    assert DIAGNOSTIC_KEYS <= set(report)
    assert report["level"] == DiagnosticStatus.OK and report["name"] == "/lane_seg: lane detection"
    assert report["device"] == report["hardware_id"] == "cpu"
    assert report["model"].startswith("lane_seg_synth.pt")
    assert int(report["frames processed"]) - int(before["frames processed"]) == answers >= 1
    for key in ("frames dropped", "bad frames", "overlays published"):  # none of these happened meanwhile
        assert report[key] == before[key], key
    assert int(report["bad frames in period"]) == 0
    busy = diagnostics_where(io, lambda v: float(v["rate (Hz)"]) > 0)  # a period with the frame just sent
    assert 0 < float(busy["latency p50 (ms)"]) <= float(busy["latency p95 (ms)"]) < 60_000
    assert re.search(r"\[lane_seg\]: [\d.]+ Hz, (latency p50 [\d.]+ ms p95 [\d.]+ ms|no frames); totals: \d+ processed",
                     io.node.stderr()), "no periodic log line"


# -------------------------------------------------------------------------------------------------------- compressed


@pytest.fixture(scope="module")
def compressed(ros, probe):
    """A second node, in namespace /compressed, reading image/compressed with reliable QoS, without the SHM profile."""
    args = ["-p", "use_compressed:=true", "-p", "qos.reliability:=reliable", "-p", "device:=cpu", "-p", "threads:=1",
            "-p", "lane_treshold:=0.5",  # a typo: warned about, ignored
            "-p", "ground.height:=2",  # an integer for a double: taken as 2.0
            "-p", "diagnostics_period:=0.5", "-r", "__ns:=/compressed"]
    env = {k: v for k, v in ros.env.items() if k != "FASTDDS_DEFAULT_PROFILES_FILE"}  # JPEGs fit the default segment
    node = NodeProcess(args, env, ros.dir, name="compressed")
    io = SimpleNamespace(node=node, image_pub=probe.publisher(CompressedImage, "/compressed/image/compressed"),
                         camera_info_pub=probe.node.create_publisher(CameraInfo, "/compressed/camera_info",
                                                                     Probe.qos(reliable=False, depth=1)))
    io.lanes, _ = probe.subscribe(LaneArray, "/compressed/lanes")
    try:
        ready = probe.wait_until(lambda: io.image_pub.get_subscription_count() > 0 or not node.alive(), START_S)
        assert ready and node.alive(), f"the compressed node did not start within {START_S} s:\n{node.output()[-3000:]}"
        yield io
    finally:
        node.kill()


def compressed_frame(index: int = 3, fmt: str = "jpeg") -> CompressedImage:
    ok, data = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", scene(index)[1])
    assert ok
    return CompressedImage(header=Header(stamp=next_stamp(), frame_id=FRAME_ID), format=fmt, data=data.tobytes())


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_input_gives_the_cores_lanes(compressed, detector, fmt):
    msg = compressed_frame(3, fmt)
    lanes = ask(compressed, msg)
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert lanes.header.frame_id == FRAME_ID and len(lanes.lanes) >= 2
    assert_same_lanes(lanes, detector(decoded))


def test_a_best_effort_camera_info_reaches_a_node_whose_images_are_reliable(compressed, probe):
    """Camera drivers publish camera_info best effort; a reliable image QoS must not stop it matching."""
    params, _, _ = scene(3)
    camera = params.camera
    info = CameraInfo(header=Header(frame_id=FRAME_ID), width=1280, height=720,
                      k=[camera.focal, 0.0, camera.cx, 0.0, camera.focal, camera.cy, 0.0, 0.0, 1.0])
    results = probe.set_parameters("/compressed/lane_seg", {"ground.enabled": True, "ground.height": camera.height,
                                                             "ground.pitch": camera.pitch})
    assert all(r.successful for r in results), [r.reason for r in results]
    assert probe.wait_until(lambda: compressed.camera_info_pub.get_subscription_count() > 0, ANSWER_S), \
        "the node's camera_info subscription does not match a best-effort publisher"
    lanes = None
    deadline = time.monotonic() + ANSWER_S
    while time.monotonic() < deadline and not (lanes and lanes.lanes and all(l.points_ground for l in lanes.lanes)):
        compressed.camera_info_pub.publish(info)
        lanes = ask(compressed, compressed_frame(3))
    assert lanes.lanes and all(lane.points_ground for lane in lanes.lanes), "no ground points from camera_info"


def test_an_unknown_parameter_is_warned_about_with_the_nearest_known_one(compressed):
    ask(compressed, compressed_frame())  # started (with an integer ground.height: accepted as a double)
    warnings = [line for line in compressed.node.stderr().splitlines() if "unknown parameter" in line]
    assert len(warnings) == 1 and "WARN" in warnings[0], compressed.node.stderr()[-2000:]
    assert "unknown parameter 'lane_treshold' ignored; did you mean 'lane_threshold'?" in warnings[0]


def test_a_node_without_the_shared_memory_profile_says_so_and_again_when_nothing_arrives(compressed):
    ask(compressed, compressed_frame())
    # the probe's publisher stays matched and sends nothing: after two status periods the node says why, and
    # names the missing profile again (on a slow machine that line may already be there: not the start-up one)
    expected = "publisher(s) matched on /compressed/image/compressed but no image arrived in the last"
    startup = [line for line in compressed.node.stderr().splitlines()
               if "no Fast-DDS profile is loaded" in line and expected not in line]
    assert len(startup) == 1 and "WARN" in startup[0], compressed.node.stderr()[-2000:]
    assert "FASTDDS_DEFAULT_PROFILES_FILE=" in startup[0] and "fastdds_shm.xml" in startup[0]
    assert Probe.wait_until(lambda: expected in compressed.node.stderr(), ANSWER_S), compressed.node.stderr()[-2000:]
    line = next(line for line in compressed.node.stderr().splitlines() if expected in line)
    assert "no Fast-DDS profile is loaded" in line and "FASTDDS_DEFAULT_PROFILES_FILE=" in line


def test_a_node_with_the_profile_does_not_warn_about_it(io):
    ask(io, frame_msg(0))
    assert "ready: lanes from /image" in io.node.stderr()
    assert "no Fast-DDS profile" not in io.node.stderr() and "declares no SHM" not in io.node.stderr()


def test_nodes_in_two_namespaces_are_told_apart_on_diagnostics(compressed, probe):
    inbox, _ = probe.subscribe(DiagnosticArray, "/diagnostics")
    report = inbox.wait_for(lambda msg: ours(msg, "/compressed/image/compressed") is not None, ANSWER_S)
    assert report is not None, "no status from the node in /compressed"
    assert ours(report, "/compressed/image/compressed")["name"] == "/compressed/lane_seg: lane detection"


def test_sigint_stops_the_node_with_exit_code_0(compressed):
    assert compressed.node.send(signal.SIGINT) == 0
    assert "Traceback" not in compressed.node.output()


# -------------------------------------------------------------------------------------------------------- start-up


STARTUP_FAILURES = {
    "missing checkpoint": (lambda d: ["-p", f"checkpoint:={d / 'missing.pt'}"], "checkpoint not found"),
    "corrupt checkpoint": (lambda d: ["-p", f"checkpoint:={d / 'corrupt.pt'}"], "not a readable checkpoint"),
    "cuda without CUDA": (lambda d: ["-p", "device:=cuda"], "CUDA is not available"),
    "invalid value in the YAML": (lambda d: ["--params-file", str(d / "invalid.yaml")], "lane_threshold out of range"),
    "a double for an integer": (lambda d: ["-p", "max_lanes:=2.5"], "max_lanes must be an integer, got the double 2.5"),
}


@pytest.fixture(scope="module")
def failed_starts(ros):
    """Start one node per start-up failure, all at once, and wait for them to exit."""
    folder = ros.dir / "failures"
    folder.mkdir()
    (folder / "corrupt.pt").write_bytes(b"GARBAGE!" + np.random.default_rng(0).bytes(4096))
    (folder / "invalid.yaml").write_text("/**:\n  ros__parameters:\n    lane_threshold: 1.5\n")
    cases = {name: case for name, case in STARTUP_FAILURES.items()
             if not (name == "cuda without CUDA" and torch.cuda.is_available())}
    env = dict(ros.env, ROS_LOG_DIR=str(folder / "log"))
    nodes = {name: NodeProcess(["-p", "device:=cpu"] * (name != "cuda without CUDA") + args(folder), env, folder,
                               name=name.replace(" ", "_"))
             for name, (args, _) in cases.items()}
    try:
        codes = {name: node.wait(START_S) for name, node in nodes.items()}
    finally:
        for node in nodes.values():
            node.kill()
    logs = "".join(path.read_text(errors="replace") for path in (folder / "log").rglob("*.log"))
    return {name: (codes[name], node.stderr(), logs) for name, node in nodes.items()}


@pytest.mark.parametrize("case", STARTUP_FAILURES)
def test_a_start_up_failure_exits_non_zero_with_a_one_line_reason(failed_starts, case):
    if case == "cuda without CUDA" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, stderr, logs = failed_starts[case]
    reason = STARTUP_FAILURES[case][1]
    assert code == 1, stderr
    lines = [line for line in stderr.splitlines() if reason in line]
    assert len(lines) == 1 and "cannot start" in lines[0] and "[ERROR]" in lines[0], stderr
    assert "Traceback" not in stderr
    assert reason in logs, "the reason is not in the ROS log file"


# -------------------------------------------------------------------------------------------------------- shutdown


def test_sigterm_stops_the_node_with_exit_code_0(io):
    ask(io, frame_msg(0))
    assert io.node.send(signal.SIGTERM) == 0
    assert "Traceback" not in io.node.output()
