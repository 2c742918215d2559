"""`lane-seg demo` (what `make demo` runs) and `lane-seg drive`: the real node in its own process, fed over DDS.

The demo test runs the whole chain once on a 4 s drive: rendering the drive bag, the node, the player and the
recorder as separate processes, then the report. The output bag is read back with rosbags alone.
"""

import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from lane_seg_core.drive import DEFAULT_SEED, DriveConfig, drive_config, render_drive
from lane_seg_core.tusimple import read_records
from lane_seg_ros.bag_io import lane_typestore
from lane_seg_ros.cli import main as cli_main
from lane_seg_ros.drive_bag import (
    INFO_FILE,
    LABEL_FILE,
    START_NS,
    DriveInfo,
    frame_key,
    planned_drive,
)

import processes

REPO = Path(__file__).resolve().parents[1]
TUSIMPLE_LINE = re.compile(r"tuSimple Accuracy=(\d\.\d{3}) FP=(\d\.\d{3}) FN=(\d\.\d{3})")


def read_bag(path):
    """{topic: [(log time ns, message), ...]} and {topic: msgtype}, read with rosbags alone (no rclpy)."""
    from rosbags.rosbag2 import Reader

    store = lane_typestore()
    messages, types = {}, {}
    with Reader(path) as reader:
        for conn, timestamp, raw in reader.messages():
            types[conn.topic] = conn.msgtype
            messages.setdefault(conn.topic, []).append((timestamp, store.deserialize_cdr(raw, conn.msgtype)))
    return messages, types


def stamp(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def run_demo(*args, timeout=300, env=None):
    return processes.run([sys.executable, "-m", "lane_seg_ros.cli", "demo", *args], cwd=REPO, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = run_demo("--out", str(out), "--seconds", "4")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


@pytest.mark.slow
def test_demo_scores_the_nodes_lanes_and_ends_with_the_tusimple_line(demo):
    out, stdout = demo
    last = stdout.strip().splitlines()[-1]
    match = TUSIMPLE_LINE.fullmatch(last)
    assert match, last
    accuracy, fp, fn = map(float, match.groups())
    assert accuracy >= 0.90 and fp <= 0.10 and fn <= 0.10, stdout[-2500:]
    for step in range(1, 6):
        assert f"[{step}/5]" in stdout
    assert re.search(r"frames: +120 played at 30\.0 Hz, \d+ answered", stdout), stdout
    assert re.search(r"node latency: +p50 [\d.]+ ms, p95 [\d.]+ ms", stdout), stdout


@pytest.mark.slow
def test_demo_output_bag_holds_the_lanes_at_the_camera_stamps(demo):
    out, stdout = demo
    camera, camera_types = read_bag(out / "drive")
    assert camera_types == {"/camera/image_raw": "sensor_msgs/msg/Image", "/camera/camera_info": "sensor_msgs/msg/CameraInfo"}
    camera_stamps = [stamp(m) for _, m in camera["/camera/image_raw"]]
    assert camera_stamps == [START_NS + round(i * 1e9 / 30) for i in range(120)]

    node, types = read_bag(out / "node_output")
    assert types["/lanes"] == "lane_seg/msg/LaneArray"
    assert types["/lanes/instance_mask"] == "sensor_msgs/msg/Image"
    assert types["/lanes/markers"] == "visualization_msgs/msg/MarkerArray"
    answers = [m for _, m in node["/lanes"]]
    answered = [stamp(m) for m in answers]
    assert len(answered) >= 30 and len(set(answered)) == len(answered)
    assert set(answered) <= set(camera_stamps) and answered == sorted(answered)
    assert all(m.header.frame_id == "camera" and (m.image_width, m.image_height) == (1280, 720) for m in answers)
    assert sum(len(m.lanes) for m in answers) >= 2 * len(answers)
    # the demo gives the node the drive's camera mount: lanes also have points on the road, in metres, from
    # the first frame after the node has the camera's intrinsics (camera_info; DDS may deliver an image first)
    without_ground = [i for i, m in enumerate(answers) if any(not lane.points_ground for lane in m.lanes)]
    assert without_ground == list(range(len(without_ground))) and len(without_ground) <= 3, without_ground
    assert all(lane.ground_frame_id == "base_footprint" for m in answers[len(without_ground):] for lane in m.lanes)
    assert [stamp(m) for _, m in node["/lanes/instance_mask"]] == answered
    diagnostics = [s for _, m in node["/diagnostics"] for s in m.status if s.name == "/lane_seg: lane detection"]
    assert diagnostics and {kv.key: kv.value for kv in diagnostics[-1].values}["frames processed"] == str(len(answered))

    predictions = read_records(out / "predictions.json")
    assert [p.raw_file for p in predictions] == [frame_key("/camera/image_raw", s) for s in answered]
    assert f"{len(answered)} answered" in stdout


@pytest.mark.slow
def test_demo_draws_a_video_of_every_frame_and_a_contact_sheet(demo):
    out, stdout = demo
    video = cv2.VideoCapture(str(out / "lanes.mp4"))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 120
    assert cv2.imread(str(out / "contact_sheet.jpg")).shape[1] == 3 * 640
    from lane_seg_ros.report import read_node_output, recorded_mask

    output = read_node_output(out / "node_output")  # the recorded masks tint the video's lane pixels
    stamp_, answer = next((s, a) for s, a in output.answers.items() if len(a.lanes) >= 2)
    mask = recorded_mask(output.masks[stamp_])
    assert mask.shape == (720, 1280) and set(np.unique(mask)) == {0, *(lane.id for lane in answer.lanes)}
    for line in ("overlay video:", "contact sheet:", "node's output bag:", "camera bag:", "predictions:", "logs:"):
        assert line in stdout


@pytest.mark.slow
def test_demo_reuses_a_drive_bag_made_with_the_same_settings_only(demo):
    from lane_seg_ros.demo import _same_drive

    out, _ = demo
    assert _same_drive(out / "drive", planned_drive(DEFAULT_SEED, drive_config(4)))
    assert not _same_drive(out / "drive", planned_drive(DEFAULT_SEED, drive_config(5)))
    assert not _same_drive(out / "drive", planned_drive(DEFAULT_SEED + 1, drive_config(4)))


@pytest.mark.slow
def test_demo_checks_a_users_labels_before_starting_anything(demo, tmp_path, capsys):
    out, _ = demo
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"lanes": [[-2, 600]], "h_samples": [700, 710], "raw_file": "clips/0001/20.jpg"}\n')
    broken = tmp_path / "broken.json"
    broken.write_text('{"lanes": [[-2, 600]], "h_samples": [700]}\n')
    for labels, expected in ((wrong, "no raw_file names a frame of /camera/image_raw; expected "
                                     "'camera/image_raw/<header stamp in ns>', the first is 'clips/0001/20.jpg'"),
                             (broken, f"{broken}:1"), (tmp_path / "none.json", "do not exist")):
        assert cli_main(["demo", "--bag", str(out / "drive"), "--labels", str(labels), "--out", str(tmp_path / "o")]) == 2
        assert expected in capsys.readouterr().err
    assert not (tmp_path / "o" / "node_output").exists()


def write_compressed_bag(path: Path, topic: str, frames: list[np.ndarray], period_ns: int) -> list[int]:
    """A bag of JPEG CompressedImage frames (BGR in); their header stamps."""
    from rosbags.rosbag2 import Writer

    store = lane_typestore()
    msg_type = store.types["sensor_msgs/msg/CompressedImage"]
    header_type, time_type = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    stamps = []
    with Writer(path, version=9) as writer:
        conn = writer.add_connection(topic, "sensor_msgs/msg/CompressedImage", typestore=store)
        for i, bgr in enumerate(frames):
            t = 1_700_000_000 * 10**9 + i * period_ns
            ok, jpeg = cv2.imencode(".jpg", bgr)
            assert ok
            msg = msg_type(header=header_type(stamp=time_type(sec=t // 10**9, nanosec=t % 10**9), frame_id="front"),
                           format="jpeg", data=np.frombuffer(jpeg.tobytes(), np.uint8))
            writer.write(conn, t, store.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))
            stamps.append(t)
    return stamps


@pytest.mark.slow
def test_demo_on_a_users_compressed_bag_without_labels_reports_and_does_not_score(tmp_path):
    config = DriveConfig(seconds=1.0, fps=8.0, lane_change_start=0.0, lane_change_seconds=1.0, speed=40.0)
    frames = [bgr for _, bgr, _ in render_drive(DEFAULT_SEED, config)]
    topic = "/front/image_raw/compressed"
    stamps = write_compressed_bag(tmp_path / "mine", topic, frames, period_ns=200_000_000)  # 5 Hz: all answered

    result = run_demo("--bag", str(tmp_path / "mine"), "--topic", topic, "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1].startswith("no ground truth for this bag: lanes not scored")
    assert "tuSimple Accuracy" not in result.stdout
    assert not (tmp_path / "out" / "predictions.json").exists()
    node, _ = read_bag(tmp_path / "out" / "node_output")
    answered = [stamp(m) for _, m in node["/lanes"]]
    assert len(answered) >= len(stamps) - 2 and set(answered) <= set(stamps)
    assert all(m.header.frame_id == "front" for _, m in node["/lanes"])


@pytest.mark.parametrize("args, expected", [
    (["--bag", "/no/such/bag"], "bag '/no/such/bag' does not exist"),
    (["--rate", "0"], "--rate must be > 0"),
])
def test_demo_refuses_bad_arguments_naming_them(tmp_path, capsys, args, expected):
    assert cli_main(["demo", "--out", str(tmp_path / "out"), *args]) == 2
    assert expected in capsys.readouterr().err


def test_drive_bag_holds_frames_camera_info_and_ground_truth_at_the_same_stamps(tmp_path):
    out = tmp_path / "drive"
    assert cli_main(["drive", "--out", str(out), "--seconds", "1", "--fps", "5", "--workers", "1",
                     "--no-progress"]) == 0
    messages, types = read_bag(out)
    assert types == {"/camera/image_raw": "sensor_msgs/msg/Image", "/camera/camera_info": "sensor_msgs/msg/CameraInfo"}
    images, infos = messages["/camera/image_raw"], messages["/camera/camera_info"]
    stamps = [START_NS + i * 200_000_000 for i in range(5)]
    assert [t for t, _ in images] == stamps and [stamp(m) for _, m in images] == stamps
    assert [stamp(m) for _, m in infos] == stamps
    first = images[0][1]
    assert (first.width, first.height, first.encoding, first.step) == (1280, 720, "bgr8", 3 * 1280)
    info = DriveInfo.read(out)
    assert info == planned_drive(DEFAULT_SEED, drive_config(1, 5))
    k = infos[0][1].k
    assert k[0] == k[4] > 500 and 0 < k[2] < 1280 and 0 < k[5] < 720 and k[8] == 1
    truth = read_records(out / LABEL_FILE)
    assert [r.raw_file for r in truth] == [frame_key("/camera/image_raw", s) for s in stamps]
    assert all(sum(x >= 0 for x in lane) >= 5 for r in truth for lane in r.lanes)
    assert (out / INFO_FILE).is_file()
    # the pixels are the drive's own frames
    _, bgr0, lanes0 = next(render_drive(DEFAULT_SEED, drive_config(1, 5)))
    assert np.array_equal(np.frombuffer(bytes(first.data), np.uint8).reshape(720, 1280, 3), bgr0)
    assert [list(lane) for lane in truth[0].lanes] == [list(lane) for lane in lanes0]


def test_drive_never_overwrites_and_leaves_nothing_behind_on_failure(tmp_path, capsys):
    out = tmp_path / "drive"
    out.mkdir()
    assert cli_main(["drive", "--out", str(out), "--seconds", "1"]) == 2
    assert f"output '{out}' exists already" in capsys.readouterr().err
    assert cli_main(["drive", "--out", str(tmp_path / "d2"), "--seconds", "1", "--topic", "camera"]) == 2
    assert "topic must be an absolute topic name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive"]


@pytest.mark.slow
def test_the_node_finds_the_same_lanes_as_the_detector_on_the_same_frames(demo):
    """One pipeline: the node's recorded lanes are LaneDetector's on the camera frame (ground plane included)."""
    from lane_seg_core.builtin import BUILTIN_CHECKPOINT
    from lane_seg_core.ground import GroundPlane
    from lane_seg_core.inference import LaneDetector

    out, _ = demo
    info = DriveInfo.read(out / "drive")
    camera, _ = read_bag(out / "drive")
    k = camera["/camera/camera_info"][0][1].k
    detector = LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cpu").with_ground_plane(
        GroundPlane.from_camera(list(k), info.camera_height, info.camera_pitch, max_distance=80.0))
    images = {stamp(m): m for _, m in camera["/camera/image_raw"]}
    node, _ = read_bag(out / "node_output")
    answers = [m for _, m in node["/lanes"] if all(lane.points_ground for lane in m.lanes)]  # camera_info known
    for answer in answers[:: max(len(answers) // 4, 1)]:
        image = images[stamp(answer)]
        rgb = cv2.cvtColor(np.frombuffer(bytes(image.data), np.uint8).reshape(720, 1280, 3), cv2.COLOR_BGR2RGB)
        expected = detector(rgb).lanes
        assert [lane.id for lane in answer.lanes] == [lane.id for lane in expected]
        for got, want in zip(answer.lanes, expected):
            points = np.array([(p.x, p.y) for p in got.points_image])
            assert points.shape == want.points.shape and np.abs(points - want.points).max() < 1.0
            ground = np.array([(p.x, p.y) for p in got.points_ground])
            assert ground.shape == want.ground_points.shape and np.abs(ground - want.ground_points).max() < 0.5


@pytest.mark.slow
def test_demo_train_makes_a_fresh_model_with_the_builtin_recipe_and_plays_it(tmp_path):
    # the recipe of the built-in model (training/train_builtin.sh, all 3 stages), shrunk to 2 steps on a few frames
    env = dict(os.environ, STEPS="2", TRAIN_FRAMES="8", VAL_FRAMES="4", HIGHWAY_STEPS="2", HIGHWAY_FRAMES="8",
               BASIC_MIX_FRAMES="4", BALANCE_STEPS="2", BALANCE_FRAMES="4")
    result = run_demo("--train", "--out", str(tmp_path), "--seconds", "2", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[3/5] training a fresh model with the built-in recipe" in result.stdout
    # stage 3 widens the width-0.125 model of stages 1 and 2 (WIDEN_TO)
    assert f"{tmp_path / 'run' / 'balance' / 'best.pt'}: SegNet width 0.1875, input 256x128" in result.stdout
    assert re.search(r"node: +device cpu, model best\.pt \(SegNet width 0\.1875\)", result.stdout), result.stdout
    assert TUSIMPLE_LINE.fullmatch(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_nodes_metric_lanes_lie_on_the_drives_painted_lines(demo):
    """What a planner gets: Lane.points_ground (metres, x forward, y left) where the drive painted the lines."""
    from lane_seg_ros.report import ground_errors, read_node_output

    out, stdout = demo
    errors = ground_errors(read_node_output(out / "node_output"), DriveInfo.read(out / "drive"), (8.0, 15.0))
    for ahead, e in errors.items():
        # A few lanes are wrong: at the lane change (the model's weak spot, see test_drive.py) and, with the
        # width-0.1875 built-in model, a lane along the guard rail 3.3 m beyond the outer line for some frames of
        # these first 4 s (94.8% of the points at 15 m within 0.3 m; 98.2% over the whole 10 s drive).
        assert len(e) >= 50 and np.median(e) < 0.1 and np.mean(e < 0.3) >= 0.93, (ahead, len(e), np.median(e))
    assert re.search(r"metric lanes: +median / p95 distance to the painted line: [\d.]+ / [\d.]+ cm at 8 m", stdout)
