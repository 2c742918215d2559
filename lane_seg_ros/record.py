"""`lane-seg record`: record topics into a rosbag2 as their messages arrive (ros2 bag record without ros2cli)."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .bag_io import BAG_VERSION, STORAGES, BagError, lane_typestore, message_class
from .stopping import stop_signals_interrupt

if TYPE_CHECKING:  # rclpy and rosbags are imported when the command runs
    from rclpy.node import Node
    from rosbags.rosbag2 import Writer

RECORDER_NODE = "lane_seg_recorder"
RECORDER_QOS_DEPTH = 100  # a burst of messages waits here rather than being lost while the bag writes
GRAPH_POLL_S = 0.1


@dataclass
class RecordSummary:
    """What `lane-seg record` wrote."""

    out: Path
    storage: str
    counts: dict[str, int]  # messages per topic (0 for a topic that never appeared)
    duration_s: float
    interrupted: bool = False

    def describe(self) -> str:
        topics = ", ".join(f"{t} {n}" for t, n in self.counts.items())
        return (f"recorded {sum(self.counts.values())} messages in {self.duration_s:.1f} s to {self.out} "
                f"({self.storage}): {topics}" + (" (stopped by Ctrl-C)" if self.interrupted else ""))


@dataclass
class _Recording:
    """The bag being written and the subscriptions feeding it; callbacks run on the executor's one thread."""

    writer: Writer
    node: Node
    typestore: object
    counts: dict[str, int]
    connections: dict[str, object] = field(default_factory=dict)
    subscriptions: list = field(default_factory=list)

    def subscribe_new(self) -> list[str]:
        """Subscribe to every requested topic that has appeared in the graph since the last call; their names."""
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        types = dict(self.node.get_topic_names_and_types())
        started = []
        for topic in self.counts:
            if topic in self.connections or topic not in types:
                continue
            if len(types[topic]) != 1:
                raise BagError(f"topic '{topic}' carries several message types ({', '.join(types[topic])}); "
                               "it cannot be recorded")
            msgtype = types[topic][0]
            if msgtype not in self.typestore.fielddefs:
                raise BagError(f"topic '{topic}': message type '{msgtype}' is unknown to the bag writer")
            publishers = self.node.get_publishers_info_by_topic(topic)
            best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers)
            qos = QoSProfile(depth=RECORDER_QOS_DEPTH, history=HistoryPolicy.KEEP_LAST,
                             durability=DurabilityPolicy.VOLATILE,
                             reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE)
            connection = self.writer.add_connection(topic, msgtype, typestore=self.typestore)
            self.connections[topic] = connection
            self.subscriptions.append(self.node.create_subscription(
                message_class(msgtype), topic, self._writer_for(topic, connection), qos, raw=True))
            started.append(topic)
        return started

    def _writer_for(self, topic: str, connection: object) -> Callable[[bytes], None]:
        def write(raw: bytes) -> None:
            self.writer.write(connection, time.time_ns(), raw)  # receive time, as ros2 bag record
            self.counts[topic] += 1
        return write


def record_topics(
    out: str | os.PathLike,
    topics: Sequence[str],
    *,
    storage: str = "mcap",
    duration: float | None = None,
    stop: threading.Event | None = None,
    domain_id: int | None = None,
) -> RecordSummary:
    """Record `topics` into a new bag `out` until Ctrl-C, SIGTERM, `duration` seconds or `stop` is set.

    Each topic is subscribed as soon as a publisher announces it (its type comes from the graph), with
    best-effort QoS if any of its publishers is best effort, else reliable, keep-last 100. Messages are
    written as they arrive, with their receive time (system clock) as the bag time; the headers inside keep
    their stamps. `lane-seg record: recording ...` on stderr says when every topic is subscribed.
    """
    out = Path(out)
    topics = list(dict.fromkeys(topics))
    if not topics:
        raise ValueError("give at least one --topic to record")
    for topic in topics:
        if not topic.startswith("/"):
            raise ValueError(f"topic '{topic}' must be absolute (start with '/'), as in the bag")
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got '{storage}'")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a finite number of seconds > 0, got {duration!r}")
    if out.exists():
        raise FileExistsError(f"output '{out}' exists already; choose another OUT or delete it")

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from rosbags.rosbag2 import StoragePlugin, Writer

    typestore = lane_typestore()
    writer = Writer(out, version=BAG_VERSION,
                    storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    interrupted = False
    started = time.monotonic()
    writer.open()
    try:
        node = rclpy.create_node(RECORDER_NODE, context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        recording = _Recording(writer, node, typestore, {t: 0 for t in topics})
        with stop_signals_interrupt():
            try:
                # said once Ctrl-C is handled: a script may interrupt the recorder as soon as it reads this line
                print(f"lane-seg record: waiting for {', '.join(topics)}", file=sys.stderr, flush=True)
                next_poll = 0.0
                while not (stop is not None and stop.is_set()):
                    now = time.monotonic()
                    if duration is not None and now - started >= duration:
                        break
                    if now >= next_poll and len(recording.connections) < len(topics):
                        if recording.subscribe_new() and len(recording.connections) == len(topics):
                            print(f"lane-seg record: recording {', '.join(topics)} to {out}",
                                  file=sys.stderr, flush=True)
                        next_poll = now + GRAPH_POLL_S
                    executor.spin_once(timeout_sec=0.05)
            except KeyboardInterrupt:
                interrupted = True
    except BaseException:
        writer.close()
        shutil.rmtree(out, ignore_errors=True)  # OUT did not exist before: no half-written bag is left
        raise
    finally:
        if node is not None:
            node.destroy_node()
        context.try_shutdown()
    writer.close()
    return RecordSummary(out, storage, recording.counts, time.monotonic() - started, interrupted)


def add_record_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record", help="record topics into a rosbag2 as they arrive (ros2 bag record without ros2cli)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Record topics into a new rosbag2, from an rclpy node 'lane_seg_recorder'. Each topic is\n"
                    "subscribed when a publisher announces it (the type comes from the graph); messages are\n"
                    "written as received (raw CDR), stamped with their receive time like ros2 bag record.\n"
                    "Ctrl-C, SIGTERM or --duration ends the recording and closes a valid bag.",
        epilog="Camera-sized messages need Fast-DDS's shared-memory profile in the publisher and the recorder:\n"
               "  export FASTDDS_DEFAULT_PROFILES_FILE=<lane_seg share>/config/fastdds_shm.xml\n"
               "example: lane-seg record out/lanes_bag --topic /lanes --topic /lanes/markers --duration 60",
    )
    p.add_argument("out", help="the new bag (a folder; must not exist)")
    p.add_argument("--topic", action="append", dest="topics", metavar="TOPIC", required=True,
                   help="absolute topic name to record; repeat for several")
    p.add_argument("--storage", choices=STORAGES, default="mcap", help="bag storage (default mcap)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: at Ctrl-C or SIGTERM)")
    p.set_defaults(func=_run_record)


def _run_record(args: argparse.Namespace) -> int:
    summary = record_topics(args.out, args.topics, storage=args.storage, duration=args.duration)
    print(summary.describe())
    return 0
