"""`lane-seg record` in its own process, fed by real rclpy publishers over DDS; the bags it writes are read with rosbags."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from lane_seg.msg import Lane, LaneArray
from lane_seg_ros.bag_io import lane_typestore
from lane_seg_ros.cli import main as cli_main
from ros_helpers import REPO, Probe, release_domain_id, reserve_domain_id, ros_env

IMAGES = 20  # best-effort images sent 50 ms apart


@pytest.fixture
def domain(tmp_path):
    domain_id = reserve_domain_id()
    yield domain_id, ros_env(domain_id, tmp_path / "ros_log")
    release_domain_id(domain_id)


def start_recorder(children, out, env, *args):
    return children.start([sys.executable, "-m", "lane_seg_ros.cli", "record", str(out), *args], env=env, cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_bag(path):
    """{topic: (msgtype, [(log time ns, message), ...])} read back with rosbags alone."""
    from rosbags.rosbag2 import Reader

    store = lane_typestore()
    out = {}
    with Reader(path) as reader:
        for conn, timestamp, raw in reader.messages():
            entry = out.setdefault(conn.topic, (conn.msgtype, []))
            entry[1].append((timestamp, store.deserialize_cdr(raw, conn.msgtype)))
    return out


def test_record_writes_every_message_as_received_with_its_own_header(tmp_path, domain, children):
    domain_id, env = domain
    out = tmp_path / "recorded"
    recorder = start_recorder(children, out, env, "--topic", "/lanes", "--topic", "/cam/image")
    probe = Probe(domain_id, "record_test_publisher")
    images = [bytes([i] * 6) for i in range(IMAGES)]
    try:
        lanes_pub = probe.node.create_publisher(LaneArray, "/lanes", probe.qos(reliable=True, depth=20))
        image_pub = probe.node.create_publisher(Image, "/cam/image", probe.qos(reliable=False, depth=20))
        assert probe.wait_until(lambda: lanes_pub.get_subscription_count() and image_pub.get_subscription_count(), 30), \
            recorder.stderr.read() if recorder.poll() is not None else "the recorder did not subscribe"
        started = time.time_ns()
        for i in range(5):  # reliable: every one is recorded
            header = Header(stamp=Time(sec=1000 + i, nanosec=7), frame_id="camera")
            lane = Lane(id=1, position=-1, confidence=0.9, pixel_count=100 + i)
            lanes_pub.publish(LaneArray(header=header, image_width=1280, image_height=720, lanes=[lane],
                                        processing_ms=12.5))
        for i, data in enumerate(images):  # best effort: the first ones may go before the recorder has matched us
            header = Header(stamp=Time(sec=2000 + i, nanosec=7), frame_id="camera")
            image_pub.publish(Image(header=header, height=2, width=3, encoding="mono8", step=3, data=data))
            time.sleep(0.05)
        time.sleep(0.5)
        finished = time.time_ns()
    finally:
        probe.close()
    recorder.send_signal(signal.SIGINT)
    stdout, stderr = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, stderr
    assert "lane-seg record: recording /lanes, /cam/image" in stderr

    bag = read_bag(out)
    assert set(bag) == {"/lanes", "/cam/image"}
    msgtype, lanes = bag["/lanes"]
    assert msgtype == "lane_seg/msg/LaneArray"
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in lanes] == [(1000 + i, 7) for i in range(5)]
    assert [m.lanes[0].pixel_count for _, m in lanes] == [100, 101, 102, 103, 104]
    assert all(started <= t <= finished for t, _ in lanes)  # the bag time is when it arrived, as ros2 bag record
    msgtype, recorded = bag["/cam/image"]
    assert msgtype == "sensor_msgs/msg/Image"
    indices = [m.header.stamp.sec - 2000 for _, m in recorded]
    assert indices == sorted(set(indices)) and len(indices) >= IMAGES // 2, indices  # in order, none twice
    assert [bytes(np.asarray(m.data)) for _, m in recorded] == [images[i] for i in indices]
    assert f"recorded {5 + len(indices)} messages" in stdout and f"/cam/image {len(indices)}" in stdout, stdout


def test_record_stops_after_its_duration_with_a_valid_bag_when_nothing_was_published(tmp_path, domain, children):
    _, env = domain
    out = tmp_path / "empty"
    began = time.monotonic()
    recorder = start_recorder(children, out, env, "--topic", "/nobody/publishes", "--duration", "1.5")
    stdout, stderr = recorder.communicate(timeout=60)
    assert recorder.returncode == 0, stderr
    assert time.monotonic() - began >= 1.5
    assert "recorded 0 messages" in stdout and "/nobody/publishes 0" in stdout
    assert read_bag(out) == {}


def test_ctrl_c_stops_a_recorder_that_inherited_sigint_ignored(tmp_path, domain, children):
    """A script's `lane-seg record ... &` starts with SIGINT ignored; Ctrl-C (SIGINT) must still close the bag."""
    _, env = domain
    out = tmp_path / "background"
    recorder = children.start([sys.executable, "-m", "lane_seg_ros.cli", "record", str(out), "--topic", "/nobody"],
                              env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 60
    while "waiting for /nobody" not in (line := recorder.stderr.readline()) and time.monotonic() < deadline:
        assert line or recorder.poll() is None, "the recorder ended before it was ready"
    recorder.send_signal(signal.SIGINT)
    stdout, stderr = recorder.communicate(timeout=20)
    assert recorder.returncode == 0, stderr
    assert "recorded 0 messages" in stdout and "(stopped by Ctrl-C)" in stdout, stdout
    assert read_bag(out) == {}


@pytest.mark.parametrize("args, expected", [
    (["--topic", "lanes"], "topic 'lanes' must be absolute"),
    (["--topic", "/lanes", "--duration", "0"], "duration must be a finite number of seconds > 0"),
    (["--topic", "/lanes", "--storage", "zip"], None),  # argparse refuses it
])
def test_record_refuses_bad_arguments_naming_them(tmp_path, capsys, args, expected):
    if expected is None:
        with pytest.raises(SystemExit):
            cli_main(["record", str(tmp_path / "out"), *args])
        assert "--storage" in capsys.readouterr().err
        return
    assert cli_main(["record", str(tmp_path / "out"), *args]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_record_never_overwrites_a_bag(tmp_path, capsys):
    existing = tmp_path / "bag"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert cli_main(["record", str(existing), "--topic", "/lanes"]) == 2
    assert f"output '{existing}' exists already" in capsys.readouterr().err
    assert (existing / "keep.txt").read_text() == "mine"
