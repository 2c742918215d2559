"""End-to-end benchmark of the ROS 2 node: camera frames in, LaneArray out, over real rclpy + Fast-DDS.

    .venv/bin/python benchmarks/node.py [--rate 30] [--duration 60] [--width 1280 --height 720]
                                        [--checkpoint PATH] [--device cpu|cuda|auto] [--threads N]
                                        [--quick] [--no-overload | --overload] [--idle-rate 5] [--strict]

Starts `lane_seg_node` as its own process (the shipped config/lane_seg.yaml, plus -p overrides for
--checkpoint/--device/--threads), streams pre-rendered synthetic bgr8 road frames to it at --rate, each
stamped with its send time, and listens to `lanes`. Both processes load config/fastdds_shm.xml
(FASTDDS_DEFAULT_PROFILES_FILE; camera-sized frames need it), discover on this machine only
(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) in a domain of their own, and log to a temporary folder.

Phases (each prints frames sent / answered / dropped, end-to-end latency = publish -> LaneArray received,
matched by header stamp, p50/p95/p99, the node's own `processing_ms`, its overhead beyond the forward pass,
throughput, and the node process's CPU % and RSS (MB) sampled every second from /proc/<pid>/stat and
/proc/<pid>/status while frames are sent):

0. unloaded: --idle-rate Hz (5) for 10 s. Every frame finds the node idle. The headline is measured from
   outside, as a user sees it: per frame, publish -> LaneArray received less the same detector's time on that
   frame in this process (timed half a period later, between two frames), the median over the phase: DDS
   transport both ways plus everything the node does beyond the network. The overhead verdict is taken on
   that figure; `processing_ms` (which the node measures from receiving the image, including any wait for
   its worker) less its own forward pass is printed beside it as the inside figure.
1. nominal: --rate Hz for --duration s.
2. overload: twice the rate the node sustains (measured in phase 1: the answered rate when it dropped frames
   there, else 1000 / median processing_ms), for --duration s. The node must stay current: p95 latency of the
   last third of the run no more than 1.5x that of the first third (a growing queue would multiply it), the
   frames it drops counted by the node itself (its /diagnostics totals: the benchmark sets
   diagnostics_period:=1.0), memory flat.

Forward time: the node reports the sum of its forward passes in /diagnostics ("forward time total (ms)"), so
the overhead of a phase is median(processing_ms) - the node's mean forward pass over that phase: image
decoding, preprocessing, clustering, polyline fit, instance mask and building the LaneArray (processing_ms is
taken before publishing). For comparison the detector is also timed in this process on the same frames,
before the node starts and after it stopped, back to back and paced at --idle-rate (on a CPU a call after
an idle gap is markedly slower: torch's threads asleep, caches cold).

Verdicts (PASS/FAIL lines; --strict exits 1 on a FAIL): overhead + transport from outside <= 10 ms median
(unloaded); RSS growth < 5%
between the first and the last 10 s of the nominal and overload phases (mean RSS of each window; a third of
the phase when shorter); overload latency bounded and drops counted. Timings depend on the machine and its
load: the output starts and ends with the load average. Nothing runs at import time; `main(argv)` runs it.
"""

from __future__ import annotations

import argparse
import array
import os
import platform
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(REPO))

from machine import cpu_model, load_average, verdict  # noqa: E402  (benchmarks/machine.py, beside this script)

from lane_seg_ros.domain import reserve_domain_id, ros_environment  # noqa: E402

CONFIG_FILE = REPO / "config" / "lane_seg.yaml"
FASTDDS_PROFILE = REPO / "config" / "fastdds_shm.xml"
NODE_SCRIPT = REPO / "scripts" / "lane_seg_node"
NODE_NAME = "lane_seg"
FRAME_SEED = 20_261_126  # synthetic frames of this benchmark (any fixed seed the built-in model never saw)
OVERHEAD_LIMIT_MS = 10.0  # promise: the node adds <= 10 ms to the forward pass (median)
MEMORY_GROWTH_LIMIT = 0.05  # promise: RSS grows < 5% between the first and the last 10 s of a phase
LATENCY_GROWTH_LIMIT = 1.5  # overload: p95 of the last third <= 1.5x p95 of the first third
MEMORY_WINDOW_S = 10.0
ANSWER_GRACE_S = 3.0  # after the last frame, wait this long for the node's last answers
DIAGNOSTICS_PERIOD_S = 1.0  # the node's report period during the benchmark (its frame counters come from there)
NODE_START_TIMEOUT_S = 180.0
CDR_LITTLE_ENDIAN = b"\x00\x01"  # the encapsulation rclpy writes on x86 and ARM
STAMP, STAMP_OFFSET = struct.Struct("<iI"), 4  # sensor_msgs/Image's header.stamp, after the 4-byte encapsulation


@dataclass
class Settings:
    rate: float = 30.0
    duration: float = 60.0
    width: int = 1280
    height: int = 720
    checkpoint: str = ""
    device: str = ""
    threads: int | None = None
    frames: int = 32  # distinct pre-rendered frames, sent in a cycle
    idle_rate: float = 5.0  # unloaded phase (0: skip it)
    idle_duration: float = 10.0
    nominal: bool = True
    overload: bool = True
    overload_rate: float | None = None
    quick: bool = False
    strict: bool = False


# --------------------------------------------------------------------------------------------------
# Machine and process sampling
# --------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # s since the phase started
    cpu_percent: float  # of one core (200% = two cores busy)
    rss_mb: float
    threads: int


class ProcessSampler:
    """Samples a process's CPU % and RSS every `period` s from /proc (Linux) in a background thread."""

    def __init__(self, pid: int, period: float = 1.0) -> None:
        self.pid, self.period = pid, period
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)
        self._ticks = os.sysconf("SC_CLK_TCK")

    def _cpu_ticks_and_threads(self) -> tuple[int, int]:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state): utime is field 14, stime 15, num_threads 20 (proc(5))
        return int(fields[11]) + int(fields[12]), int(fields[17])

    def _rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return float("nan")

    def _run(self) -> None:
        start = last_t = time.monotonic()
        try:
            last_ticks, _ = self._cpu_ticks_and_threads()
        except OSError:
            return
        while not self._stop.wait(self.period):
            try:
                ticks, threads = self._cpu_ticks_and_threads()
                rss = self._rss_mb()
            except OSError:  # the process is gone
                return
            now = time.monotonic()
            cpu = (ticks - last_ticks) / self._ticks / (now - last_t) * 100.0
            self.samples.append(Sample(now - start, cpu, rss, threads))
            last_t, last_ticks = now, ticks

    def start(self) -> "ProcessSampler":
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples


# --------------------------------------------------------------------------------------------------
# Frames and the forward pass
# --------------------------------------------------------------------------------------------------


def render_frames(settings: Settings) -> list:
    """Pre-rendered BGR uint8 [H,W,3] road frames (synthetic, tuSimple-like), resized to --width x --height."""
    import cv2

    from lane_seg_core.synth import render_scene, sample_frame

    frames = []
    for i in range(settings.frames):
        bgr, _ = render_scene(sample_frame(FRAME_SEED, i))
        if bgr.shape[1] != settings.width or bgr.shape[0] != settings.height:
            bgr = cv2.resize(bgr, (settings.width, settings.height), interpolation=cv2.INTER_AREA)
        frames.append(bgr)
    return frames


@dataclass
class ForwardTiming:
    """Medians over the detector calls timed at one pace."""

    forward_ms: float  # the network call (the `forward` stage of LaneDetector.network)
    rest_ms: float  # everything else the detector does: preprocess, cluster, fit, mask (median of the per-call sums)
    stages_ms: dict[str, float]  # median of each stage
    runs: int
    rate: float  # frames per second the calls were paced at; 0 = back to back

    @property
    def pace(self) -> str:
        return f"paced at {self.rate:g} Hz" if self.rate else "back to back"

    @classmethod
    def of(cls, timings: list[dict[str, float]], rate: float) -> "ForwardTiming":
        stages = {k: statistics.median(t[k] for t in timings) for k in timings[0]}
        rest = statistics.median(t["total"] - t["forward"] for t in timings)
        return cls(stages["forward"], rest, stages, len(timings), rate)


class DetectorTimer:
    """Times the detector in this process as the node runs it (RGB input; same checkpoint, device, threads).

    The pace matters on a CPU: a call after an idle gap finds torch's worker threads asleep and the caches
    cold and takes longer than one right after another, so each phase is compared with the detector timed at
    its own pace. The runs before and after the node's run are pooled: on a shared machine either can be hit
    by other work.
    """

    def __init__(self, frames: list, checkpoint: str, device: str, threads: int | None) -> None:
        import cv2

        from lane_seg_core.builtin import BUILTIN_CHECKPOINT
        from lane_seg_core.inference import LaneDetector
        from lane_seg_core.threads import use_cpu_threads

        self.threads = use_cpu_threads(threads or 0)  # as the node resolves its `threads` (0: half the CPUs)
        self.detector = LaneDetector.from_checkpoint(checkpoint or BUILTIN_CHECKPOINT, device=device or "auto")
        self.device = str(self.detector.device)
        self.images = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]
        self.runs: dict[float, list[dict[str, float]]] = {}
        for image in self.images[:3]:  # warm-up: lazy initialisation, allocator
            self.detector(image)

    def measure(self, rate: float, passes: int) -> ForwardTiming:
        """Time `passes` passes over the frames (one when paced), calls started 1/rate s apart (0: back to back)."""
        timings = []
        for image in [image for _ in range(passes if not rate else 1) for image in self.images]:
            start = time.perf_counter()
            timings.append(self.detector(image).timings)
            if rate:
                time.sleep(max(0.0, start + 1.0 / rate - time.perf_counter()))
        self.runs.setdefault(rate, []).extend(timings)
        return ForwardTiming.of(timings, rate)

    def time_frame(self, index: int) -> float:
        """The detector's total ms on frame `index` (of the cycle), now."""
        start = time.perf_counter()
        self.detector(self.images[index % len(self.images)])
        return (time.perf_counter() - start) * 1e3

    def pooled(self, rate: float) -> ForwardTiming:
        return ForwardTiming.of(self.runs[rate], rate)


# --------------------------------------------------------------------------------------------------
# The node process and the ROS side of the benchmark
# --------------------------------------------------------------------------------------------------


def start_node(settings: Settings, env: dict[str, str], log: Path) -> subprocess.Popen:
    overrides = ["-p", f"diagnostics_period:={DIAGNOSTICS_PERIOD_S}"]  # fresh frame counters every second
    if settings.checkpoint:
        overrides += ["-p", f"checkpoint:={settings.checkpoint}"]
    if settings.device:
        overrides += ["-p", f"device:={settings.device}"]
    if settings.threads is not None:
        overrides += ["-p", f"threads:={settings.threads}"]
    command = [sys.executable, str(NODE_SCRIPT), "--ros-args", "--params-file", str(CONFIG_FILE), *overrides]
    with open(log, "wb") as out:
        return subprocess.Popen(command, env={**os.environ, **env}, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def stop_node(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def node_threads_parameter(settings: Settings) -> int | None:
    """The node's `threads` parameter: --threads, else the config file's (0 or None: half the CPUs)."""
    if settings.threads is not None:
        return settings.threads
    try:
        import yaml

        document = yaml.safe_load(CONFIG_FILE.read_text()) or {}
        for key in (NODE_NAME, f"/{NODE_NAME}", "/**"):
            value = (document.get(key) or {}).get("ros__parameters", {}).get("threads")
            if value is not None:
                return int(value)
    except (OSError, ValueError, AttributeError):
        pass
    return None


@dataclass
class NodeCounters:
    """The node's own frame totals, from its /diagnostics report."""

    received_at: float  # time.monotonic() when the report arrived
    processed: int
    dropped: int
    bad: int
    forward_ms_total: float  # the node's forward passes, summed

    def __sub__(self, other: "NodeCounters") -> "NodeCounters":
        return NodeCounters(self.received_at, self.processed - other.processed, self.dropped - other.dropped,
                            self.bad - other.bad, self.forward_ms_total - other.forward_ms_total)

    @property
    def mean_forward_ms(self) -> float:
        return self.forward_ms_total / self.processed if self.processed else float("nan")


@dataclass
class PhaseResult:
    name: str
    target_rate: float
    duration: float
    sent: int
    send_rate: float  # achieved
    answered: int
    unmatched: int  # LaneArrays whose stamp was never sent (should be 0)
    latencies_ms: list[float]  # per answered frame, in send order
    send_times: list[float]  # s since the phase start, per answered frame (same order)
    processing_ms: list[float]
    samples: list[Sample]  # the node process
    own_samples: list[Sample]  # this process (the camera stand-in competes with the node for the CPU)
    node: NodeCounters | None  # the node's counts over the phase (None: no diagnostics arrived)
    paired_ms: list[float] = field(default_factory=list)  # per frame: latency - this process's detector on it

    @property
    def dropped(self) -> int:
        return self.sent - self.answered

    @property
    def throughput(self) -> float:
        return self.answered / self.duration


class Bench:
    """The benchmark's ROS node: a camera-like publisher, a LaneArray subscriber and a /diagnostics listener."""

    def __init__(self, rclpy, context, frames: list) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from rclpy.serialization import serialize_message

        from lane_seg.msg import LaneArray

        self.node = rclpy.create_node("lane_seg_benchmark", context=context)
        # A camera driver's publisher: keep the newest frame only; reliable matches reliable and best-effort
        # subscriptions alike (the node's input QoS is a parameter).
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.publisher = self.node.create_publisher(Image, "image", qos)
        self.subscription = self.node.create_subscription(LaneArray, "lanes", self._on_lanes, 100)
        self.diagnostics = self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        # Each frame is serialised once; sending writes the stamp into its CDR bytes and publishes them, as a C++
        # camera driver costs a copy, not rclpy's per-field Python serialisation (3 ms for 720p here).
        self.messages: list[bytearray] = []
        for bgr in frames:
            msg = Image(height=bgr.shape[0], width=bgr.shape[1], encoding="bgr8", is_bigendian=0,
                        step=bgr.shape[1] * 3)
            msg.header.frame_id = "camera_optical_frame"
            msg.data = array.array("B", bgr.tobytes())
            raw = bytearray(serialize_message(msg))
            if raw[:2] != CDR_LITTLE_ENDIAN:
                raise RuntimeError(f"unexpected CDR encapsulation {bytes(raw[:4]).hex()} (little-endian expected)")
            self.messages.append(raw)
        self._lock = threading.Lock()
        self._sent: dict[int, float] = {}  # stamp ns -> send time (s since the phase start)
        self._answers: dict[int, tuple[float, float]] = {}  # stamp ns -> (latency ms, processing ms)
        self._unmatched = 0
        self._phase_start = time.monotonic()
        self.counters: NodeCounters | None = None  # the node's latest report

    def _on_lanes(self, msg) -> None:
        received = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            if stamp in self._sent and stamp not in self._answers:
                self._answers[stamp] = ((received - stamp) / 1e6, float(msg.processing_ms))
            else:
                self._unmatched += 1

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name != f"/{NODE_NAME}: lane detection":  # the node's fully qualified name
                continue
            values = {kv.key: kv.value for kv in status.values}
            try:
                self.counters = NodeCounters(time.monotonic(), int(values["frames processed"]),
                                             int(values["frames dropped"]), int(values["bad frames"]),
                                             float(values["forward time total (ms)"]))
            except (KeyError, ValueError):
                pass  # a report without the counters: the node's format changed; the phases report "n/a"

    def fresh_counters(self, timeout: float = 3 * DIAGNOSTICS_PERIOD_S + 1.0) -> NodeCounters | None:
        """The first node report that arrives from now on (its totals include everything sent so far)."""
        since = time.monotonic()
        self.spin_for(timeout, until=lambda: self.counters is not None and self.counters.received_at > since)
        return self.counters if self.counters is not None and self.counters.received_at > since else None

    def _publish(self, index: int) -> int:
        raw = self.messages[index % len(self.messages)]
        stamp = time.time_ns()
        STAMP.pack_into(raw, STAMP_OFFSET, *divmod(stamp, 1_000_000_000))  # header.stamp: int32 sec, uint32 nanosec
        with self._lock:
            self._sent[stamp] = time.monotonic() - self._phase_start
        self.publisher.publish(bytes(raw))
        return stamp

    def spin_for(self, seconds: float, until=None) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if until is not None and until():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return until() if until is not None else True

    def wait_until_connected(self, process: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not (self.publisher.get_subscription_count() > 0 and self.subscription.get_publisher_count() > 0):
            if process.poll() is not None:
                raise RuntimeError(f"the node exited with code {process.returncode} during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the node did not subscribe to `image` and publish `lanes` within {timeout:.0f} s")
            self.spin_for(0.2)

    def warm_up(self, process: subprocess.Popen, timeout: float) -> float:
        """Send frames at 2 Hz until the node has answered twice (connections up, first-frame costs paid)."""
        self._reset()
        start, index = time.monotonic(), 0
        while time.monotonic() - start < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"the node exited with code {process.returncode} during warm-up")
            self._publish(index)
            index += 1
            self.spin_for(0.5)
            with self._lock:
                if len(self._answers) >= 2:
                    return time.monotonic() - start
        raise RuntimeError(f"the node answered no frame within {timeout:.0f} s")

    def _reset(self) -> None:
        with self._lock:
            self._sent.clear()
            self._answers.clear()
            self._unmatched = 0
            self._phase_start = time.monotonic()

    def run_phase(self, name: str, rate: float, duration: float, pid: int,
                  paired: DetectorTimer | None = None) -> PhaseResult:
        """Send frames at `rate` for `duration` s; with `paired`, time the detector here on each frame sent.

        The paired timing runs half a period after the frame went out (the node has answered it by then), so the
        node and this process's detector see the same frame under the same load of the machine.
        """
        before = self.fresh_counters()  # the node is idle: the previous phase's answers are all in
        self._reset()
        sampler, own_sampler = ProcessSampler(pid).start(), ProcessSampler(os.getpid()).start()
        sent = [0]
        detector_ms: dict[int, float] = {}  # stamp ns -> this process's detector time on the same frame

        def sender() -> None:  # fixed schedule (absolute deadlines: no drift); a late frame goes out at once
            start = time.monotonic()
            for index in range(int(round(rate * duration))):
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                stamp = self._publish(index)
                sent[0] += 1
                if paired is not None:
                    time.sleep(max(0.0, start + (index + 0.5) / rate - time.monotonic()))
                    detector_ms[stamp] = paired.time_frame(index)

        thread = threading.Thread(target=sender, name="sender", daemon=True)
        thread.start()
        while thread.is_alive():
            self.executor.spin_once(timeout_sec=0.05)
        send_end = time.monotonic() - self._phase_start
        samples, own_samples = sampler.stop(), own_sampler.stop()  # CPU and memory while frames were coming in
        self.spin_for(ANSWER_GRACE_S, until=lambda: len(self._answers) >= sent[0])
        after = self.fresh_counters()
        with self._lock:
            order = sorted(self._answers, key=lambda s: self._sent[s])
            return PhaseResult(
                name=name, target_rate=rate, duration=duration, sent=sent[0], send_rate=sent[0] / max(send_end, 1e-9),
                answered=len(self._answers), unmatched=self._unmatched,
                latencies_ms=[self._answers[s][0] for s in order], send_times=[self._sent[s] for s in order],
                processing_ms=[self._answers[s][1] for s in order], samples=samples, own_samples=own_samples,
                node=after - before if after is not None and before is not None else None,
                paired_ms=[self._answers[s][0] - detector_ms[s] for s in order if s in detector_ms],
            )

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


# --------------------------------------------------------------------------------------------------
# Statistics and report
# --------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def memory_growth(samples: list[Sample], duration: float) -> tuple[float, float, float]:
    """(mean RSS of the first window, of the last window, growth as a fraction); windows of 10 s or a third."""
    if not samples:
        return float("nan"), float("nan"), float("nan")
    window = min(MEMORY_WINDOW_S, duration / 3)
    first = [s.rss_mb for s in samples if s.t <= window] or [samples[0].rss_mb]
    last = [s.rss_mb for s in samples if s.t >= samples[-1].t - window] or [samples[-1].rss_mb]
    a, b = statistics.fmean(first), statistics.fmean(last)
    return a, b, (b - a) / a


def thirds_p95(result: PhaseResult) -> tuple[float, float, float]:
    """p95 latency of the frames sent in the first, middle and last third of the phase."""
    third = result.duration / 3
    groups = [[], [], []]
    for latency, t in zip(result.latencies_ms, result.send_times):
        groups[min(int(t // third), 2)].append(latency)
    return tuple(percentile(g, 95) for g in groups)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).rjust(w) if i else str(c).ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def outside_overhead_ms(result: PhaseResult, forward: ForwardTiming) -> float:
    """What a user sees: publish -> LaneArray received, less the same detector's time on the same frame here.

    Everything but the detector's own work: DDS transport both ways, the node's executor, decoding, building
    and publishing the outputs, waiting for the worker. The median of per-frame differences when the phase
    timed the detector beside each frame (paired), else the difference of the medians.
    """
    if result.paired_ms:
        return median(result.paired_ms)
    return median(result.latencies_ms) - (forward.forward_ms + forward.rest_ms)


def overhead_ms(result: PhaseResult, forward: ForwardTiming) -> float:
    """Median processing_ms less the node's own mean forward pass over the phase (the benchmark's, if unknown)."""
    node_forward = result.node.mean_forward_ms if result.node is not None else float("nan")
    return median(result.processing_ms) - (node_forward if node_forward == node_forward else forward.forward_ms)


def phase_section(result: PhaseResult, forward: ForwardTiming) -> tuple[list[str], dict[str, bool]]:
    lat, proc = result.latencies_ms, result.processing_ms
    drop_pct = 100.0 * result.dropped / result.sent if result.sent else float("nan")
    lines = [
        f"## {result.name}: {result.target_rate:.1f} Hz for {result.duration:.0f} s",
        "",
        f"Frames: sent {result.sent} (at {result.send_rate:.1f} Hz), answered {result.answered}, "
        f"dropped {result.dropped} ({drop_pct:.1f}%), unmatched answers {result.unmatched}",
    ]
    if result.node is not None:
        lost = result.sent - result.node.processed - result.node.dropped - result.node.bad
        lines.append(f"The node's own counts (/diagnostics): processed {result.node.processed}, dropped "
                     f"{result.node.dropped} (replaced by a newer frame before its worker took them), bad "
                     f"{result.node.bad}; never reached the node (DDS, best effort, depth 1): {lost}")
    else:
        lines.append("The node's own counts (/diagnostics): n/a (no report arrived)")
    lines += [
        f"End-to-end latency (publish -> LaneArray received) ms: p50 {percentile(lat, 50):.1f}, "
        f"p95 {percentile(lat, 95):.1f}, p99 {percentile(lat, 99):.1f}, max {max(lat, default=float('nan')):.1f}",
        f"Node processing_ms (receipt -> LaneArray built, including any wait for the worker): "
        f"p50 {percentile(proc, 50):.1f}, p95 {percentile(proc, 95):.1f}, p99 {percentile(proc, 99):.1f}",
        f"Throughput: {result.throughput:.1f} Hz answered",
    ]
    overhead = overhead_ms(result, forward)
    outside = outside_overhead_ms(result, forward)
    post = forward.rest_ms
    node_forward = median(proc) - overhead
    if result.paired_ms:
        lines.append(f"Node overhead + transport, measured from outside: median over {len(result.paired_ms)} frames of "
                     f"(latency - the detector here on the same frame, half a period later) = {outside:.1f} ms "
                     f"(p95 {percentile(result.paired_ms, 95):.1f})")
    else:
        lines.append(f"Node overhead + transport, measured from outside: median latency {median(lat):.1f} - the "
                     f"detector here on the same frames ({forward.pace}) {forward.forward_ms + post:.1f} = "
                     f"{outside:.1f} ms")
    lines.append(f"Node overhead beyond the forward pass: median processing_ms {median(proc):.1f} - the node's mean "
                 f"forward pass {node_forward:.1f} = {overhead:.1f} ms (in this process, {forward.pace}: forward "
                 f"{forward.forward_ms:.1f} ms, the detector's own preprocessing + post-processing {post:.1f} ms)")
    checks: dict[str, bool] = {}
    if result.samples:
        cpu = [s.cpu_percent for s in result.samples]
        rss = [s.rss_mb for s in result.samples]
        first, last, growth = memory_growth(result.samples, result.duration)
        lines += [
            f"Node process CPU % (100 = one core), {len(cpu)} samples at 1 s: mean {statistics.fmean(cpu):.0f}, "
            f"first {cpu[0]:.0f}, last {cpu[-1]:.0f}, max {max(cpu):.0f}; threads {result.samples[-1].threads}",
            f"Node process RSS MB: first {rss[0]:.1f}, last {rss[-1]:.1f}, max {max(rss):.1f}; mean of the first "
            f"{min(MEMORY_WINDOW_S, result.duration / 3):.0f} s {first:.1f}, of the last {last:.1f}: "
            f"growth {100 * growth:+.2f}%",
        ]
        if result.own_samples:
            own = [s.cpu_percent for s in result.own_samples]
            lines.append(f"Benchmark process CPU % (sending and receiving, on the same cores): mean "
                         f"{statistics.fmean(own):.0f}, max {max(own):.0f}")
    else:
        growth = float("nan")
        lines.append("Node process CPU % / RSS: no samples (the phase was shorter than 1 s)")
    if result.name == "Unloaded":
        checks["overhead"] = outside <= OVERHEAD_LIMIT_MS
        lines.append(f"Node overhead + transport from outside (unloaded): {outside:.1f} ms <= {OVERHEAD_LIMIT_MS:.0f} ms: "
                     f"{verdict(checks['overhead'])} (inside the node, beyond its forward pass: {overhead:.1f} ms)")
        return lines, checks
    checks["memory"] = growth < MEMORY_GROWTH_LIMIT
    lines.append(f"Memory growth ({result.name.lower()}): {100 * growth:+.2f}% < {100 * MEMORY_GROWTH_LIMIT:.0f}%: "
                 f"{verdict(checks['memory'])}")
    if result.name == "Overload":
        p1, p2, p3 = thirds_p95(result)
        checks["bounded"] = result.answered > 0 and p3 <= LATENCY_GROWTH_LIMIT * p1
        lines.append(f"Overload latency p95 by thirds of the run ms: {p1:.1f}, {p2:.1f}, {p3:.1f}")
        lines.append(f"Overload latency bounded: last third p95 {p3:.1f} ms <= {LATENCY_GROWTH_LIMIT}x first third "
                     f"{p1:.1f} ms: {verdict(checks['bounded'])}")
        counted = result.node is not None and result.node.dropped > 0 and abs(result.node.processed - result.answered) <= 1
        checks["drops counted"] = counted
        lines.append(f"Overload drops counted by the node: dropped {result.node.dropped if result.node else 'n/a'} > 0 "
                     f"and processed {result.node.processed if result.node else 'n/a'} = answered {result.answered}: "
                     f"{verdict(counted)}")
    return lines, checks


def table_row(result: PhaseResult, forward: ForwardTiming) -> list[str]:
    lat = result.latencies_ms
    cpu = [s.cpu_percent for s in result.samples] or [float("nan")]
    first, last, growth = memory_growth(result.samples, result.duration)
    return [
        result.name.lower(), f"{result.target_rate:.0f}", f"{result.sent}", f"{result.answered}",
        f"{result.dropped} ({100.0 * result.dropped / max(result.sent, 1):.0f}%)",
        f"{percentile(lat, 50):.0f} / {percentile(lat, 95):.0f} / {percentile(lat, 99):.0f}",
        f"{median(result.processing_ms):.1f}", f"{outside_overhead_ms(result, forward):.1f}",
        f"{overhead_ms(result, forward):.1f}", f"{result.throughput:.1f}",
        f"{statistics.fmean(cpu):.0f} / {max(cpu):.0f}", f"{first:.0f} -> {last:.0f} ({100 * growth:+.1f}%)",
    ]


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=30.0, help="nominal frame rate in Hz (default 30)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of the nominal and overload phases (default 60; --quick: 10)")
    parser.add_argument("--idle-rate", type=float, default=5.0,
                        help="frame rate of the unloaded phase, 10 s (--quick: 5 s); 0 skips it (default 5)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--checkpoint", default="", help="the node's checkpoint (default: the config's, the built-in model)")
    parser.add_argument("--device", default="", help="the node's device (default: the config's, auto)")
    parser.add_argument("--threads", type=int, default=None, help="the node's torch threads (default: the config's)")
    parser.add_argument("--frames", type=int, default=None, help="distinct frames to cycle (default 32; --quick: 8)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 5 s unloaded, 10 s phases, 8 frames")
    phases = parser.add_mutually_exclusive_group()
    phases.add_argument("--no-overload", action="store_true", help="skip the overload phase")
    phases.add_argument("--overload", action="store_true",
                        help="only the overload phase (its rate from --overload-rate, else measured in a 5 s run at "
                             "--rate first)")
    parser.add_argument("--overload-rate", type=float, default=None, help="overload rate in Hz (default: 2x measured)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a verdict is FAIL")
    args = parser.parse_args(argv)
    duration = args.duration if args.duration is not None else (10.0 if args.quick else 60.0)
    frames = args.frames if args.frames is not None else (8 if args.quick else 32)
    if args.rate <= 0 or duration <= 0 or args.idle_rate < 0 or frames < 1 or args.width < 16 or args.height < 16:
        parser.error("--rate and --duration must be > 0, --idle-rate >= 0, --frames >= 1, --width/--height >= 16")
    if args.overload_rate is not None and args.overload_rate <= 0:
        parser.error("--overload-rate must be > 0")
    return Settings(rate=args.rate, duration=duration, width=args.width, height=args.height,
                    checkpoint=args.checkpoint, device=args.device, threads=args.threads, frames=frames,
                    idle_rate=0.0 if args.overload else args.idle_rate, idle_duration=5.0 if args.quick else 10.0,
                    nominal=not args.overload, overload=not args.no_overload, overload_rate=args.overload_rate,
                    quick=args.quick, strict=args.strict)


def sustainable_rate(result: PhaseResult) -> float:
    """What the node can process per second: its answered rate if it dropped frames, else 1000/median processing."""
    if result.dropped > 0.02 * result.sent:
        return result.throughput
    return 1000.0 / median(result.processing_ms)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    started = time.monotonic()
    import torch

    from lane_seg_core.threads import cpu_threads

    threads = node_threads_parameter(settings)
    print("# lane_seg node benchmark (real rclpy + Fast-DDS, the node in its own process)\n")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__} with "
          f"{cpu_threads(threads or 0)} threads in the node (threads parameter "
          f"{threads if threads is not None else 'unset'}), Python {platform.python_version()}, "
          f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print(f"Load average at start (1/5/15 min): {load_average()}")
    print(f"Mode: {'quick (smoke test)' if settings.quick else 'full'}; {settings.width}x{settings.height} bgr8 "
          f"frames, {settings.frames} distinct, cycled; nominal/overload phases of {settings.duration:.0f} s; "
          f"Fast-DDS profile {FASTDDS_PROFILE.relative_to(REPO)} in both processes\n")

    frames = render_frames(settings)
    passes = 1 if settings.quick else 3
    paces = (0.0, settings.idle_rate) if settings.idle_rate else (0.0,)
    timer = DetectorTimer(frames, settings.checkpoint, settings.device, threads)
    print(f"Detector timed in the benchmark process (same frames, checkpoint, device {timer.device}, "
          f"{timer.threads} torch threads), medians in ms:")

    def show(when: str, timing: ForwardTiming) -> None:
        print(f"  {when}, {timing.pace}, {timing.runs} runs: forward {timing.forward_ms:.1f}, rest of the detector "
              f"{timing.rest_ms:.1f}; stages " + ", ".join(f"{k} {v:.1f}" for k, v in timing.stages_ms.items()))

    for pace in paces:
        show("before the node", timer.measure(pace, passes))

    tmp = Path(tempfile.mkdtemp(prefix="lane_seg_bench_"))
    domain_lease = reserve_domain_id()  # the same lock files as the tests and the demo: never a shared domain
    domain = domain_lease.domain_id
    env = ros_environment(domain, tmp / "ros_log")
    os.environ.update(env)  # this process's participant: the same profile, discovery range and domain
    import rclpy

    context = rclpy.Context()
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)  # Ctrl-C: cleanup
    process = start_node(settings, env, tmp / "node.log")
    bench = None
    results: list[PhaseResult] = []
    try:
        bench = Bench(rclpy, context, frames)
        bench.wait_until_connected(process, NODE_START_TIMEOUT_S)
        warm = bench.warm_up(process, NODE_START_TIMEOUT_S)
        print(f"Node ready (pid {process.pid}, ROS_DOMAIN_ID {domain}); answering after {warm:.1f} s of warm-up\n")

        capacity = None
        if settings.idle_rate > 0:
            results.append(bench.run_phase("Unloaded", settings.idle_rate, settings.idle_duration, process.pid,
                                           paired=timer))
        if settings.nominal:
            results.append(bench.run_phase("Nominal", settings.rate, settings.duration, process.pid))
            capacity = sustainable_rate(results[-1])
        if settings.overload:
            if settings.overload_rate:
                rate = settings.overload_rate
                print(f"Overload rate: {rate:.1f} Hz (--overload-rate)")
            else:
                if capacity is None:  # --overload alone: a short run at the nominal rate measures the node
                    capacity = sustainable_rate(bench.run_phase("Calibration", settings.rate, 5.0, process.pid))
                rate = 2.0 * capacity
                print(f"Overload rate: {rate:.1f} Hz, twice the {capacity:.1f} Hz the node sustains (its answered "
                      f"rate when it dropped frames at {settings.rate:.0f} Hz, else 1000 / median processing_ms)")
            results.append(bench.run_phase("Overload", rate, settings.duration, process.pid))
        if process.poll() is not None:
            raise RuntimeError(f"the node exited with code {process.returncode} during the benchmark")
    except Exception:
        print(f"--- node log ({tmp / 'node.log'}, kept), last lines:\n"
              + (tmp / "node.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        if bench is not None:
            bench.close()
        rclpy.shutdown(context=context)
        stop_node(process)
        domain_lease.release()
    shutil.rmtree(tmp, ignore_errors=True)  # the node's log and ROS logs (kept when something failed)

    for pace in paces:
        show("after the node", timer.measure(pace, passes))
    forwards = {pace: timer.pooled(pace) for pace in paces}
    for pace in paces:
        show("pooled (used below)", forwards[pace])
    forward = forwards[0.0]

    def forward_for(result: PhaseResult) -> ForwardTiming:
        """The unloaded phase's frames find the node idle: compare with the paced timing; the others, back to back."""
        return forwards.get(result.target_rate, forward) if result.name == "Unloaded" else forward

    checks: dict[str, bool] = {}
    for result in results:
        print()
        lines, phase_checks = phase_section(result, forward_for(result))
        print("\n".join(lines))
        checks.update({f"{result.name.lower()} {k}": v for k, v in phase_checks.items()})

    print("\n## Summary (markdown, for the README)\n")
    print(markdown_table(
        ["phase", "rate Hz", "sent", "answered", "dropped", "latency p50/p95/p99 ms", "processing ms p50",
         "overhead + transport ms (outside)", "overhead ms (inside)", "throughput Hz", "CPU % mean/max",
         "RSS MB first->last 10 s"],
        [table_row(r, forward_for(r)) for r in results]))
    paced = forwards.get(settings.idle_rate)
    print(f"\n{settings.width}x{settings.height} bgr8 frames over Fast-DDS shared memory; latency = publish -> LaneArray "
          f"received; overhead = median processing_ms - median forward pass, timed in the benchmark process at the "
          f"phase's pace (back to back {forward.forward_ms:.1f} ms"
          + (f", paced at {settings.idle_rate:g} Hz {paced.forward_ms:.1f} ms" if paced else "")
          + "); CPU % of one core.")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch threads {timer.threads}, device {timer.device}; "
          f"load average (1/5/15 min) at the end {load_average()}.")
    failed = [name for name, ok in checks.items() if not ok]
    print(f"\nVerdicts: {len(checks) - len(failed)} PASS, {len(failed)} FAIL" + (f" ({', '.join(failed)})" if failed else ""))
    print(f"Finished in {time.monotonic() - started:.0f} s")
    return 1 if settings.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
