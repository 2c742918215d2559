"""`lane-seg bag` on real rosbag2 files (mcap and sqlite3, written by rosbags) and real rclpy.

Input bags are built here from rendered synthetic road frames (640x360). Image header stamps are 30 ms before the
bag's receive timestamps, so a test can tell the two apart. test_play.py builds its bags with these helpers too.
"""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from lane_seg.msg import LaneArray
from lane_seg_core.cli import BUILTIN_CHECKPOINT
from lane_seg_core.ground import GroundConfig
from lane_seg_core.inference import LaneDetector
from lane_seg_core.synth import render_scene, sample_frame
from lane_seg_ros import bag as bagtool
from lane_seg_ros import bag_io
from lane_seg_ros.cli import main as cli_main

import processes

REPO = Path(__file__).resolve().parent.parent
T0 = 1_764_000_000_000_000_000  # ns: bag receive time of the first frame
PERIOD = 100_000_000  # 10 Hz
CAPTURE_LAG = 30_000_000  # header.stamp = receive time - 30 ms
FRAME_ID = "front_camera_optical"
STORE = get_typestore(Stores.ROS2_KILTED)
PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}


# --------------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Six BGR road frames, 640x360."""
    return [cv2.resize(render_scene(sample_frame(20261125, i))[0], (640, 360), interpolation=cv2.INTER_AREA)
            for i in range(6)]


@pytest.fixture(scope="module")
def detector() -> LaneDetector:
    return LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cpu")


def stamp_of(ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def image_cdr(bgr: np.ndarray, receive_ns: int, encoding: str = "bgr8") -> bytes:
    header = Header(stamp=stamp_of(receive_ns - CAPTURE_LAG), frame_id=FRAME_ID)
    msg = Image(header=header, height=bgr.shape[0], width=bgr.shape[1], encoding=encoding, is_bigendian=0,
                step=bgr.shape[1] * 3, data=np.ascontiguousarray(bgr).tobytes())
    return serialize_message(msg)


def jpeg_cdr(bgr: np.ndarray, receive_ns: int) -> bytes:
    header = Header(stamp=stamp_of(receive_ns - CAPTURE_LAG), frame_id=FRAME_ID)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return serialize_message(CompressedImage(header=header, format="jpeg", data=data.tobytes()))


def write_bag(path: Path, storage: str, topics: dict[str, tuple[str, list[tuple[int, bytes]]]]) -> Path:
    """topics: name -> (message type, [(receive ns, CDR bytes)]); messages are written in time order."""
    with Writer(path, version=9, storage_plugin=PLUGINS[storage]) as writer:
        connections = {t: writer.add_connection(t, msgtype, typestore=STORE) for t, (msgtype, _) in topics.items()}
        messages = sorted((ts, t, raw) for t, (_, items) in topics.items() for ts, raw in items)
        for ts, t, raw in messages:
            writer.write(connections[t], ts, raw)
    return path


def image_bag(path: Path, storage: str, frames, topic="/camera/image_raw", make=image_cdr) -> tuple[Path, list]:
    messages = [(T0 + i * PERIOD, make(frame, T0 + i * PERIOD)) for i, frame in enumerate(frames)]
    msgtype = bag_io.COMPRESSED_IMAGE if make is jpeg_cdr else bag_io.IMAGE
    return write_bag(path, storage, {topic: (msgtype, messages)}), messages


def read_bag(path: Path) -> tuple[dict[str, str], dict[str, list[tuple[int, bytes]]]]:
    """(topic -> type, topic -> [(timestamp, raw bytes)] in bag order)."""
    with Reader(path) as reader:
        types = {t: info.msgtype for t, info in reader.topics.items()}
        messages = {t: [] for t in types}
        for conn, ts, raw in reader.messages():
            messages[conn.topic].append((ts, bytes(raw)))
    return types, messages


def check_lanes_bag(out: Path, image_topic: str, inputs: list[tuple[int, bytes]], size: tuple[int, int],
                    outputs: bagtool.OutputTopics, image_type: str = bag_io.IMAGE, bad: set[int] = frozenset(),
                    storage: str | None = None) -> list[LaneArray]:
    """The output bag has the input images unchanged and one LaneArray, mask and MarkerArray per good image."""
    types, messages = read_bag(out)
    assert types == {image_topic: image_type, outputs.lanes: "lane_seg/msg/LaneArray",
                     outputs.instance_mask: "sensor_msgs/msg/Image",
                     outputs.markers: "visualization_msgs/msg/MarkerArray"}
    if storage is not None:
        assert [p.suffix for p in out.iterdir() if p.name != "metadata.yaml"] == [SUFFIX[storage]]
    assert messages[image_topic] == inputs  # every image, same bytes, same receive timestamps
    message_class = CompressedImage if image_type == bag_io.COMPRESSED_IMAGE else Image
    good = [(ts, deserialize_message(raw, message_class).header) for ts, raw in inputs if ts not in bad]
    lane_arrays = []
    for name, cls in ((outputs.lanes, LaneArray), (outputs.instance_mask, Image), (outputs.markers, MarkerArray)):
        assert [ts for ts, _ in messages[name]] == [ts for ts, _ in good], name
    for (ts, header), (_, lanes_raw), (_, mask_raw), (_, markers_raw) in zip(
            good, messages[outputs.lanes], messages[outputs.instance_mask], messages[outputs.markers]):
        lanes = deserialize_message(lanes_raw, LaneArray)
        mask_msg = deserialize_message(mask_raw, Image)
        markers = deserialize_message(markers_raw, MarkerArray)
        for msg in (lanes, mask_msg):
            assert (stamp_ns(msg.header.stamp), msg.header.frame_id) == (stamp_ns(header.stamp), header.frame_id)
        assert stamp_ns(header.stamp) == ts - CAPTURE_LAG
        assert (lanes.image_width, lanes.image_height) == size
        ids = [lane.id for lane in lanes.lanes]
        assert len(ids) >= 2 and ids == list(range(1, len(ids) + 1))
        assert all(len(lane.points_image) >= 2 for lane in lanes.lanes)
        assert lanes.processing_ms > 0
        assert (mask_msg.width, mask_msg.height, mask_msg.encoding, mask_msg.step) == (*size, "mono8", size[0])
        mask = np.frombuffer(bytes(mask_msg.data), np.uint8).reshape(size[1], size[0])
        values = set(np.unique(mask).tolist())
        assert 0 in values and values - {0} <= set(ids) and len(values - {0}) >= 2
        assert markers.markers[0].action == Marker.DELETEALL
        strips = [m for m in markers.markers if m.type == Marker.LINE_STRIP]
        assert sorted(m.id for m in strips) == ids
        assert all(stamp_ns(m.header.stamp) == stamp_ns(header.stamp) for m in markers.markers)
        lane_arrays.append(lanes)
    return lane_arrays


# --------------------------------------------------------------------------------------------------- bag: unit


@pytest.mark.parametrize("topic, compressed, namespace, expected", [
    ("/camera/image_raw", False, None, "/camera/lanes"),
    ("/camera/image_raw/compressed", True, None, "/camera/lanes"),
    ("/vehicle/front/image", False, None, "/vehicle/front/lanes"),
    ("/image_raw", False, None, "/lanes"),
    ("/camera/image_raw", False, "/", "/lanes"),
    ("/camera/image_raw", False, "front", "/front/lanes"),
])
def test_output_topics_sit_in_the_image_topics_namespace(topic, compressed, namespace, expected):
    topics = bagtool.output_topics(topic, namespace, compressed)
    assert tuple(topics) == (expected, expected + "/instance_mask", expected + "/markers")


def test_lane_messages_register_in_rosbags_with_ros_own_hash_and_cdr(monkeypatch):
    store = bag_io.lane_typestore()
    share = Path(sys.prefix) / "share"
    for msgtype in (bag_io.LANE_ARRAY, bag_io.IMAGE, bag_io.MARKER_ARRAY):  # the types lane-seg bag writes
        description = share / f"{msgtype}.json"
        if description.exists():  # the hash rosidl generated for the installed message (a bag's type_description_hash)
            ros_hashes = {h["type_name"]: h["hash_string"] for h in json.loads(description.read_text())["type_hashes"]}
            assert store.hash_rihs01(msgtype) == ros_hashes[msgtype], msgtype
    from lane_seg.msg import Lane
    from geometry_msgs.msg import Point32

    msg = LaneArray(header=Header(stamp=stamp_of(T0), frame_id=FRAME_ID), image_width=640, image_height=360,
                    lanes=[Lane(id=1, position=-1, confidence=0.5, pixel_count=9,
                                points_image=[Point32(x=1.0, y=2.0, z=0.0)])], processing_ms=3.5)
    decoded = store.deserialize_cdr(serialize_message(msg), "lane_seg/msg/LaneArray")  # rclpy CDR -> rosbags
    assert (decoded.image_width, decoded.lanes[0].position, decoded.lanes[0].points_image[0].y) == (640, -1, 2.0)
    assert deserialize_message(bytes(store.serialize_cdr(decoded, "lane_seg/msg/LaneArray")), LaneArray) == msg

    # the definitions are found without an ament index and without an installed share folder too
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    monkeypatch.setattr(bag_io.importlib.util, "find_spec", lambda name: None)
    assert bag_io.lane_msg_dir() == REPO / "msg"


# --------------------------------------------------------------------------------------------------- bag: runs


def test_bag_command_writes_images_lanes_masks_and_markers_mcap(tmp_path, frames):
    bag, inputs = image_bag(tmp_path / "drive", "mcap", frames)
    out = tmp_path / "drive_lanes"
    result = processes.run(
        [sys.executable, "-m", "lane_seg_ros.cli", "bag", str(bag), "--out", str(out), "--device", "cpu",
         "--batch-size", "4", "--threads", "1"],
        timeout=120, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    outputs = bagtool.output_topics("/camera/image_raw")
    check_lanes_bag(out, "/camera/image_raw", inputs, (640, 360), outputs, storage="mcap")
    assert f"frames={len(frames)} " in result.stdout and "bad_frames=0" in result.stdout
    assert "ms/frame" in result.stdout and str(out) in result.stdout and "/camera/lanes/markers" in result.stdout
    assert "bag: 100%" in result.stderr  # the progress bar


@pytest.mark.parametrize("storage, single_file", [(None, False), ("mcap", False), (None, True)])
def test_sqlite3_bags_keep_their_storage_or_convert(tmp_path, frames, detector, storage, single_file):
    bag, inputs = image_bag(tmp_path / "in", "sqlite3", frames[:3], topic="/front/image_raw")
    if single_file:  # the .db3 file alone, without metadata.yaml
        bag = next(bag.glob("*.db3"))
    summary = bagtool.process_bag(bag, tmp_path / "out", detector, storage=storage, progress=False)
    outputs = bagtool.output_topics("/front/image_raw")
    lanes = check_lanes_bag(tmp_path / "out", "/front/image_raw", inputs, (640, 360), outputs,
                            storage=storage or "sqlite3")
    assert (summary.frames, summary.bad_frames, summary.storage) == (3, 0, storage or "sqlite3")
    assert summary.lanes == sum(len(x.lanes) for x in lanes) and summary.median_ms > 0


def test_compressed_images_and_a_ground_plane_from_the_bags_camera_info(tmp_path, frames, detector):
    messages = [(T0 + i * PERIOD, jpeg_cdr(frame, T0 + i * PERIOD)) for i, frame in enumerate(frames[:3])]
    k = [500.0, 0.0, 320.0, 0.0, 500.0, 180.0, 0.0, 0.0, 1.0]
    info = CameraInfo(header=Header(stamp=stamp_of(T0 - PERIOD), frame_id=FRAME_ID), width=640, height=360, k=k)
    bag = write_bag(tmp_path / "in", "mcap", {
        "/camera/image_raw/compressed": (bag_io.COMPRESSED_IMAGE, messages),
        "/camera/camera_info": (bag_io.CAMERA_INFO, [(T0 - PERIOD, serialize_message(info))]),
    })
    ground = GroundConfig(frame_id="base_footprint", height=1.5, pitch=0.05)
    summary = bagtool.process_bag(bag, tmp_path / "out", detector, ground=ground, progress=False)
    outputs = bagtool.output_topics("/camera/image_raw/compressed", compressed=True)
    assert outputs.lanes == "/camera/lanes"
    lanes = check_lanes_bag(tmp_path / "out", "/camera/image_raw/compressed", messages, (640, 360), outputs,
                            image_type=bag_io.COMPRESSED_IMAGE)
    assert summary.frames == 3
    with_ground = [lane for frame in lanes for lane in frame.lanes if lane.points_ground]
    assert len(with_ground) >= 3
    assert all(lane.ground_frame_id == "base_footprint" for lane in with_ground)
    assert all(0 < p.x <= 80 for lane in with_ground for p in lane.points_ground)


def test_a_corrupt_frame_is_copied_warned_about_counted_and_skipped(tmp_path, frames, detector, capsys):
    inputs = [(T0 + i * PERIOD, image_cdr(frame, T0 + i * PERIOD)) for i, frame in enumerate(frames[:4])]
    wrong_step = Image(header=Header(stamp=stamp_of(T0 + PERIOD), frame_id=FRAME_ID), height=360, width=640,
                       encoding="bgr8", step=640, data=bytes(640 * 360))  # step < width * 3
    inputs[1] = (inputs[1][0], serialize_message(wrong_step))
    inputs[2] = (inputs[2][0], inputs[2][1][:100])  # truncated CDR
    bag = write_bag(tmp_path / "in", "sqlite3", {"/camera/image_raw": (bag_io.IMAGE, inputs)})
    summary = bagtool.process_bag(bag, tmp_path / "out", detector, batch_size=2, progress=False)
    bad = {inputs[1][0], inputs[2][0]}
    check_lanes_bag(tmp_path / "out", "/camera/image_raw", inputs, (640, 360),
                    bagtool.output_topics("/camera/image_raw"), bad=bad)
    assert (summary.frames, summary.bad_frames, summary.processed) == (4, 2, 2)
    assert "bad_frames=2" in summary.describe()
    err = capsys.readouterr().err
    assert f"({inputs[1][0]} ns) skipped: step=640 is less than the 1920 bytes a row of 640 bgr8 pixels needs" in err
    assert f"({inputs[2][0]} ns) skipped: serialised sensor_msgs/Image is truncated (100 bytes)" in err


class FailingDetector:
    """The real detector for the first `calls` batches, then `error`."""

    def __init__(self, detector: LaneDetector, calls: int, error: BaseException) -> None:
        self.detector, self.calls, self.error = detector, calls, error

    def __call__(self, images):
        if self.calls == 0:
            raise self.error
        self.calls -= 1
        return self.detector(images)


def test_ctrl_c_keeps_a_valid_bag_of_the_frames_done_and_a_failure_leaves_none(tmp_path, frames, detector):
    bag, inputs = image_bag(tmp_path / "in", "mcap", frames[:4])
    with pytest.raises(KeyboardInterrupt):
        bagtool.process_bag(bag, tmp_path / "partial", FailingDetector(detector, 1, KeyboardInterrupt()),
                            batch_size=2, progress=False)
    check_lanes_bag(tmp_path / "partial", "/camera/image_raw", inputs[:2], (640, 360),
                    bagtool.output_topics("/camera/image_raw"))
    with pytest.raises(RuntimeError, match="out of memory"):
        bagtool.process_bag(bag, tmp_path / "failed", FailingDetector(detector, 1, RuntimeError("out of memory")),
                            batch_size=2, progress=False)
    assert not (tmp_path / "failed").exists()


def test_bag_errors_exit_2_naming_what_is_wrong(tmp_path, frames, capsys):
    two = write_bag(tmp_path / "two", "mcap", {
        "/left/image_raw": (bag_io.IMAGE, [(T0, image_cdr(frames[0], T0))]),
        "/right/image_raw": (bag_io.IMAGE, [(T0, image_cdr(frames[1], T0))]),
        "/left/camera_info": (bag_io.CAMERA_INFO, [(T0, serialize_message(CameraInfo()))]),
    })
    (tmp_path / "not_a_bag").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "garbage.mcap").write_bytes(b"not an mcap file at all")
    (tmp_path / "exists").mkdir()
    cases = [
        ([str(tmp_path / "missing_bag")], "bag '" + str(tmp_path / "missing_bag") + "' does not exist"),
        ([str(tmp_path / "not_a_bag")], "is not a rosbag2 bag: the folder has no metadata.yaml"),
        ([str(tmp_path / "notes.txt")], "notes.txt' is not a rosbag2 bag"),
        ([str(tmp_path / "garbage.mcap")], "garbage.mcap' could not be read as a rosbag2 bag"),
        ([str(two)], "has 2 image topics; choose one with --topic: /left/image_raw (sensor_msgs/msg/Image), "
                     "/right/image_raw (sensor_msgs/msg/Image)"),
        ([str(two), "--topic", "/rear/image_raw"], "topic '/rear/image_raw' is not in bag"),
        ([str(two), "--topic", "/left/camera_info"], "carries sensor_msgs/msg/CameraInfo, not sensor_msgs/Image"),
        ([str(two), "--topic", "/left/image_raw", "--camera-pitch", "0.1"], "--camera-pitch only apply with"),
    ]
    for args, message in cases:
        assert cli_main(["bag", *args, "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("lane-seg bag: error: ") and message in err, (args, err)
    assert cli_main(["bag", str(two), "--topic", "/left/image_raw", "--out", str(tmp_path / "exists")]) == 2
    assert "exists already" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
