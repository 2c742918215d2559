"""`lane-seg play` on real rosbag2 files (written by rosbags) with real rclpy subscribers and the node.

The bags are built with test_bag's helpers from rendered synthetic road frames scaled to 320x180; image header
stamps are 30 ms before the bag's receive timestamps, so a test can tell the two apart.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image

from lane_seg.msg import LaneArray
from lane_seg_ros import bag_io
from lane_seg_ros.cli import main as cli_main
from lane_seg_ros.domain import reserve_domain_id, ros_environment

import test_bag
from test_bag import CAPTURE_LAG, FRAME_ID, PERIOD, REPO, T0, image_cdr, stamp_ns, write_bag

frames = test_bag.frames  # the fixture: six rendered road frames, 640x360


@pytest.fixture
def ros_env(tmp_path, monkeypatch):
    """A private DDS domain on localhost for this test, in this process and in the subprocesses it starts."""
    with reserve_domain_id() as lease:
        env = ros_environment(lease.domain_id, tmp_path / "ros_log")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield {**os.environ, **env}, lease.domain_id


class Listener:
    """An rclpy node in this process recording raw messages with their arrival time."""

    def __init__(self, domain: int, subscriptions: dict[str, type], reliable: bool = False) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(f"bag_test_listener_{os.getpid()}", context=self.context)
        self.received: dict[str, list[tuple[float, bytes]]] = {t: [] for t in subscriptions}
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=50, reliability=reliability)
        for topic, cls in subscriptions.items():
            self.node.create_subscription(cls, topic, lambda raw, t=topic: self.received[t].append(
                (time.monotonic(), raw)), qos, raw=True)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_while(self, proc: subprocess.Popen, timeout: float, until=lambda: False, after: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline and not until():
            self.executor.spin_once(timeout_sec=0.01)
        end = time.monotonic() + after
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def play(children, bag: Path, env: dict, *args: str) -> subprocess.Popen:
    return children.start([sys.executable, "-m", "lane_seg_ros.cli", "play", str(bag), *args], env=env, cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float, interrupt: bool = False) -> tuple[str, str]:
    """(stdout, stderr) of a process that is ending (after SIGINT if `interrupt`); killed if it does not."""
    if interrupt:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return out, f"{err}\n(killed after {timeout} s)"


def small_bag(path: Path, frames, topic: str, period: int) -> tuple[Path, list[tuple[int, bytes]]]:
    """A camera bag of 320x180 frames (they fit Fast-DDS's default shared memory) every `period` ns."""
    small = [cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in frames]
    messages = [(T0 + i * period, image_cdr(f, T0 + i * period)) for i, f in enumerate(small)]
    return write_bag(path, "mcap", {topic: (bag_io.IMAGE, messages)}), messages


def test_play_publishes_every_frame_with_its_stamp_and_the_bags_timing(tmp_path, frames, ros_env, children):
    env, domain = ros_env
    topic = f"/bagtest_{os.getpid()}/camera/image_raw"
    bag, messages = small_bag(tmp_path / "small", frames, topic, period=250_000_000)  # 4 Hz, 1.25 s
    span = (messages[-1][0] - messages[0][0]) / 1e9
    remapped = f"/bagtest_{os.getpid()}/front/image_raw"
    listener = Listener(domain, {topic: Image, remapped: Image})
    try:
        spans = {}
        for rate, target in (("1", topic), ("2", remapped)):
            # a best-effort reader may match a moment after the player saw it: start late enough on a busy machine
            args = ["--rate", rate, "--wait-subscribers", "20", "--start-delay", "1.5"]
            if target != topic:
                args += ["--remap", f"{topic}:={remapped}"]
            proc = play(children, bag, env, *args)
            listener.spin_while(proc, timeout=60)
            out, err = finish(proc, timeout=10)
            assert proc.returncode == 0, err
            got = listener.received[target]
            assert [raw for _, raw in got] == [raw for _, raw in messages], f"rate {rate}: {len(got)} received"
            stamps = [stamp_ns(deserialize_message(raw, Image).header.stamp) for _, raw in got]
            assert stamps == [ts - CAPTURE_LAG for ts, _ in messages]
            spans[rate] = got[-1][0] - got[0][0]
            assert f"published {len(messages)} messages" in out and f"--rate {rate}" in out
        assert 0.7 * span <= spans["1"] <= 1.5 * span + 0.3, spans
        assert 0.7 * span / 2 <= spans["2"] <= 1.5 * span / 2 + 0.3, spans
        assert spans["2"] < 0.75 * spans["1"], spans
    finally:
        listener.close()


def test_play_stops_cleanly_on_ctrl_c_while_looping(tmp_path, frames, ros_env, children):
    env, domain = ros_env
    topic = f"/bagtest_{os.getpid()}/loop/image_raw"
    bag, messages = small_bag(tmp_path / "loop", frames[:3], topic, period=100_000_000)
    listener = Listener(domain, {topic: Image})
    try:
        proc = play(children, bag, env, "--loop", "--wait-subscribers", "20", "--start-delay", "0.2")
        listener.spin_while(proc, timeout=60, until=lambda: len(listener.received[topic]) >= 2 * len(messages) + 1,
                            after=0)
        out, err = finish(proc, timeout=15, interrupt=True)
        assert proc.returncode == 0, err
        assert "stopped by Ctrl-C" in out and "passes" in out
        assert "Traceback" not in err
        got = [raw for _, raw in listener.received[topic]]
        assert got[: 2 * len(messages)] == [raw for _, raw in messages] * 2
    finally:
        listener.close()


def test_play_errors_exit_2_naming_what_is_wrong(tmp_path, frames, capsys):
    bag, _ = small_bag(tmp_path / "b", frames[:1], "/camera/image_raw", period=PERIOD)
    cases = [
        (["--topic", "/camera/nothing"], "topic '/camera/nothing' not in bag"),
        (["--remap", "/camera/image_raw=/x"], "--remap must look like OLD:=NEW, got '/camera/image_raw=/x'"),
        (["--remap", "/other:=/x"], "topic '/other' is not played"),
        (["--rate", "0"], "rate must be a finite number > 0, got 0.0"),
    ]
    for args, message in cases:
        assert cli_main(["play", str(bag), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("lane-seg play: error: ") and message in err, (args, err)
    assert cli_main(["play", str(tmp_path / "nope")]) == 2
    assert "bag '" + str(tmp_path / "nope") + "' does not exist" in capsys.readouterr().err


def test_play_feeds_the_node_and_its_lanes_carry_the_bags_stamps(tmp_path, frames, ros_env, children):
    env, domain = ros_env
    ns = f"bagtest_{os.getpid()}"
    topic = f"/{ns}/camera/image_raw"
    bag, messages = small_bag(tmp_path / "drive", frames[:4], topic, period=400_000_000)  # 2.5 Hz
    listener = Listener(domain, {f"/{ns}/lanes": LaneArray}, reliable=True)
    node = children.start(
        [sys.executable, "-m", "lane_seg_ros.node", "--ros-args", "-r", f"__ns:=/{ns}", "-r", f"image:={topic}",
         "-p", "device:=cpu", "-p", "threads:=1"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    player, out, err = None, "", ""
    try:
        # Start the player once this process sees the node's lanes publisher (the model is loaded): starting both
        # processes at once sometimes left the node and this listener unmatched for seconds (DDS discovery).
        lanes_sub = next(iter(listener.node.subscriptions))
        listener.spin_while(node, timeout=60, until=lambda: lanes_sub.get_publisher_count() > 0, after=0)
        if node.poll() is None and lanes_sub.get_publisher_count() > 0:
            player = play(children, bag, env, "--wait-subscribers", "60")
            listener.spin_while(player, timeout=90, after=3.0)
            out, err = finish(player, timeout=10)
    finally:
        if player is not None and player.poll() is None:
            finish(player, timeout=5, interrupt=True)
        node_log, _ = finish(node, timeout=20, interrupt=True)
        listener.close()
    logs = f"player:\n{out}{err}\nnode:\n{node_log}"
    assert player is not None, f"the node did not start\n{logs}"
    assert player.returncode == 0 and node.returncode == 0, logs
    assert "no subscriber" not in err, logs  # it waited for the node
    got = [deserialize_message(raw, LaneArray) for _, raw in listener.received[f"/{ns}/lanes"]]
    expected = [ts - CAPTURE_LAG for ts, _ in messages]
    stamps = [stamp_ns(lanes.header.stamp) for lanes in got]
    # the node keeps only the newest frame; at 2.5 Hz on a CPU it keeps up with all or nearly all
    assert len(stamps) >= len(expected) - 1, (stamps, logs)
    assert stamps == sorted(stamps) and set(stamps) <= set(expected), stamps
    assert all(lanes.header.frame_id == FRAME_ID and len(lanes.lanes) >= 2 for lanes in got)
