"""`lane-seg play`: publish a rosbag2's camera images with their recorded timing (ros2 bag play without ros2cli)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .bag_io import CAMERA_INFO, IMAGE_TYPES, BagError, bag_topics, describe_topics, message_class, open_bag, read_messages
from .stopping import stop_signals_interrupt

if TYPE_CHECKING:  # rclpy and rosbags are imported when the command runs
    from rosbags.rosbag2 import Reader

PLAYER_NODE = "lane_seg_player"
LINGER_S = 0.5  # after the last message, before the node and its transports go away
PLAYER_QOS_DEPTH = 10  # reliable keep-last 10: matches reliable and best-effort (sensor-data) subscriptions


@dataclass
class PlaySummary:
    """What `lane-seg play` published."""

    messages: int
    duration_s: float  # wall time from the first publication to the last
    bag_duration_s: float  # first to last message of the bag's played topics (one pass)
    bag_messages: int  # messages in one pass
    rate: float
    passes: int
    interrupted: bool = False

    @property
    def achieved_hz(self) -> float:
        return (self.messages - 1) / self.duration_s if self.messages > 1 and self.duration_s > 0 else 0.0

    @property
    def expected_hz(self) -> float:
        if self.bag_messages < 2 or self.bag_duration_s <= 0:
            return 0.0
        return (self.bag_messages - 1) / self.bag_duration_s * self.rate

    def describe(self) -> str:
        return (f"published {self.messages} messages in {self.duration_s:.2f} s: {self.achieved_hz:.1f} msg/s "
                f"(the bag at --rate {self.rate:g}: {self.expected_hz:.1f} msg/s), {self.passes} pass"
                f"{'es' if self.passes != 1 else ''}" + (", stopped by Ctrl-C" if self.interrupted else ""))


def parse_remaps(remaps: Sequence[str], topics: Sequence[str]) -> dict[str, str]:
    """['OLD:=NEW', ...] -> {OLD: NEW}; every OLD must be one of the played topics."""
    renames = {}
    for remap in remaps:
        old, sep, new = remap.partition(":=")
        if not sep or not old or not new:
            raise ValueError(f"--remap must look like OLD:=NEW, got '{remap}'")
        if old not in topics:
            raise ValueError(f"--remap {remap}: topic '{old}' is not played; played topics: {', '.join(topics)}")
        renames[old] = new
    return renames


def play_bag(
    bag: str | os.PathLike,
    *,
    topics: Sequence[str] | None = None,
    rate: float = 1.0,
    loop: bool = False,
    remaps: Sequence[str] = (),
    start_delay: float = 0.5,
    wait_subscribers: float = 5.0,
    domain_id: int | None = None,
) -> PlaySummary:
    """Publish a bag's messages as recorded (raw CDR) with its timing scaled by `rate`.

    `topics` default to all Image, CompressedImage and CameraInfo topics. Playback starts once any publisher has a
    subscriber (or after `wait_subscribers` s; 0: at once) and `start_delay` s more, which lets the subscriber
    match the publisher too. Publishers are reliable, keep-last 10, volatile: they match reliable and
    best-effort (sensor-data) subscriptions. Ctrl-C or SIGTERM stops playback; the summary says so.
    """
    bag = Path(bag)
    for name, value, low in (("rate", rate, 0.0), ("start delay", start_delay, -1e-9),
                             ("wait for subscribers", wait_subscribers, -1e-9)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > low):
            raise ValueError(f"{name} must be a finite number {'> 0' if low == 0 else '>= 0'}, got {value!r}")

    with open_bag(bag) as reader:
        available = bag_topics(reader)
        if topics:
            missing = [t for t in topics if t not in available]
            if missing:
                raise BagError(f"topic{'s' if len(missing) > 1 else ''} {', '.join(repr(t) for t in missing)} "
                               f"not in bag '{bag}'; its topics: {describe_topics(available)}")
            selected = list(dict.fromkeys(topics))
        else:
            selected = [t for t, ty in available.items() if ty in IMAGE_TYPES]
            if not selected:
                raise BagError(f"bag '{bag}' has no Image or CompressedImage topic; choose topics with --topic: "
                               f"{describe_topics(available)}")
            # the calibration travels with the images: the node's ground plane waits for it
            selected += [t for t, ty in available.items() if ty == CAMERA_INFO]
        for t in selected:
            if not available[t]:
                raise BagError(f"topic '{t}' in bag '{bag}' carries several message types; it cannot be played")
        classes = {t: message_class(available[t]) for t in selected}
        renames = parse_remaps(remaps, selected)
        connections = [c for c in reader.connections if c.topic in selected]
        bag_messages = sum(c.msgcount for c in connections)
        if bag_messages == 0:
            raise BagError(f"bag '{bag}' has no messages on {', '.join(selected)}")

        import rclpy
        from rclpy.duration import Duration
        from rclpy.exceptions import InvalidTopicNameException
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions

        context = rclpy.Context()
        rclpy.init(context=context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        node = None
        try:
            node = rclpy.create_node(PLAYER_NODE, context=context)
            qos = QoSProfile(depth=PLAYER_QOS_DEPTH, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
            publishers = {}
            for t in selected:
                try:
                    publishers[t] = node.create_publisher(classes[t], renames.get(t, t), qos)
                except InvalidTopicNameException as exc:
                    raise ValueError(f"--remap {t}:={renames.get(t)}: not a valid topic name ({exc})") from None
            names = ", ".join(p.topic_name for p in publishers.values())
            interrupted = False
            stats = _PlayStats()
            with stop_signals_interrupt():
                try:
                    _wait_for_subscribers(list(publishers.values()), wait_subscribers, names)
                    time.sleep(start_delay)
                    print(f"lane-seg play: playing {bag_messages} messages on {names} at --rate {rate:g}"
                          + (" in a loop (Ctrl-C stops)" if loop else ""), file=sys.stderr)
                    _publish(reader, connections, publishers, rate, loop, bag, stats)
                except KeyboardInterrupt:
                    interrupted = True
                for publisher in publishers.values():  # let reliable subscribers receive the last messages
                    publisher.wait_for_all_acked(Duration(seconds=2))
                # Best-effort readers send no acknowledgements: a message still in flight when the process
                # tears down its transports is lost (seen in CI: the last frame of a bag), so linger briefly.
                time.sleep(LINGER_S)
        finally:
            if node is not None:
                node.destroy_node()
            context.try_shutdown()
    return PlaySummary(stats.messages, stats.duration_s, stats.bag_span_ns / 1e9, bag_messages, rate,
                       stats.passes, interrupted)


@dataclass
class _PlayStats:
    messages: int = 0
    passes: int = 0
    first_s: float | None = None
    last_s: float | None = None
    bag_span_ns: int = 0

    @property
    def duration_s(self) -> float:
        return (self.last_s - self.first_s) if self.first_s is not None else 0.0


def _wait_for_subscribers(publishers: list, timeout_s: float, names: str) -> None:
    """Until any publisher has a subscriber, for at most timeout_s (a warning, not an error, when none came)."""
    if timeout_s <= 0 or any(p.get_subscription_count() for p in publishers):
        return
    print(f"lane-seg play: waiting up to {timeout_s:g} s for a subscriber on {names}", file=sys.stderr)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.get_subscription_count() for p in publishers):
            return
        time.sleep(0.02)
    print(f"lane-seg play: warning: no subscriber after {timeout_s:g} s; playing anyway", file=sys.stderr)


def _publish(reader: Reader, connections: list, publishers: dict, rate: float, loop: bool, bag: Path,
             stats: _PlayStats) -> None:
    """Publish each message when its time (relative to the pass's first message, divided by rate) has come."""
    start = time.monotonic()
    while True:
        stats.passes += 1
        first_ns = last_ns = None
        count = 0
        for conn, timestamp, raw in read_messages(reader, connections, bag):
            if first_ns is None:
                first_ns = timestamp
            delay = start + (timestamp - first_ns) / 1e9 / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            publishers[conn.topic].publish(bytes(raw))
            now = time.monotonic()
            if stats.first_s is None:
                stats.first_s = now
            stats.last_s = now
            stats.messages += 1
            last_ns = timestamp
            count += 1
        if first_ns is None:
            return
        stats.bag_span_ns = last_ns - first_ns
        if not loop:
            return
        # the next pass starts one mean message interval after this one's last message
        gap_s = stats.bag_span_ns / 1e9 / (count - 1) if count > 1 else 0.1
        start = time.monotonic() + gap_s / rate


def add_play_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "play", help="publish a bag's camera images with their recorded timing (ros2 bag play without ros2cli)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Publish a rosbag2's messages as recorded, from an rclpy node 'lane_seg_player': the raw CDR\n"
                    "bytes (so header stamps are the original ones) at the bag's timing divided by --rate.\n"
                    "Publishers are reliable, keep-last 10, volatile: they match the node's best-effort\n"
                    "(sensor-data) subscription. Ctrl-C or SIGTERM stops playback and prints the summary.",
        epilog="Camera-sized images need Fast-DDS's shared-memory profile in the player and the subscriber:\n"
               "  export FASTDDS_DEFAULT_PROFILES_FILE=<lane_seg share>/config/fastdds_shm.xml\n"
               "example: lane-seg play drive.mcap --rate 0.5 --remap /camera/image_raw:=/front/image_raw",
    )
    p.add_argument("bag", help="rosbag2 folder (with metadata.yaml), or a single .mcap or .db3 file")
    p.add_argument("--topic", action="append", dest="topics", metavar="TOPIC",
                   help="topic to play; repeat for several (default: every Image, CompressedImage and "
                        "CameraInfo topic)")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor: 2 plays twice as fast (default 1)")
    p.add_argument("--loop", action="store_true", help="play again and again until Ctrl-C")
    p.add_argument("--remap", action="append", default=[], metavar="OLD:=NEW",
                   help="publish a bag topic under another name; repeat for several")
    p.add_argument("--start-delay", type=float, default=0.5,
                   help="seconds between finding a subscriber and the first message (default 0.5)")
    p.add_argument("--wait-subscribers", type=float, default=5.0,
                   help="wait up to this many seconds for a subscriber before playing (default 5, 0: do not wait)")
    p.set_defaults(func=_run_play)


def _run_play(args: argparse.Namespace) -> int:
    summary = play_bag(args.bag, topics=args.topics, rate=args.rate, loop=args.loop, remaps=args.remap,
                       start_delay=args.start_delay, wait_subscribers=args.wait_subscribers)
    print(summary.describe())
    return 0
