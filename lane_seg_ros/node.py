"""The lane_seg node: camera images in; lanes, an instance mask, rviz markers and a debug overlay out.

Thin glue around lane_seg_core: messages <-> arrays, parameters, QoS and threading. The per-frame work is
`LaneDetector.__call__`. The subscription callback only keeps the newest image and wakes a worker thread, so
the executor (parameters, camera_info, diagnostics) never waits for inference; an image replaced before the
worker took it is dropped and counted.

    ros2 run lane_seg lane_seg_node --ros-args --params-file config/lane_seg.yaml -r image:=/camera/image_raw
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from lane_seg.msg import LaneArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.utilities import get_rmw_implementation_identifier
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from lane_seg_core.camera import CameraModel
from lane_seg_core.cli import BUILTIN_CHECKPOINT
from lane_seg_core.inference import Detection, LaneDetector, resolve_device
from lane_seg_core.threads import use_cpu_threads
from lane_seg_core.visualize import draw_detection

from . import fastdds, parameters
from .cdr import decode_camera_message
from .conversions import ImageError, array_to_image
from .frame import FramePipeline, frame_outputs

OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
WARN_EVERY_S = 5.0  # throttle of the bad-frame warnings
STOP_NOTICE_S = 2.0  # a stop waiting longer than this for the frame in hand says so
SILENCE_WARN_EVERY_S = 30.0  # throttle of "a publisher is matched but nothing arrives"


class StartupError(RuntimeError):
    """The node cannot start (checkpoint, device, parameter); the message is the one line shown to the user."""


@dataclass(frozen=True)
class Pipeline:
    """Everything the worker needs for one frame; replaced as a whole when a setting changes."""

    frame: FramePipeline  # the detector with the current post-processing settings and ground plane, the camera
    publish_overlay: bool


class FrameStats:
    """Counters and receive-to-publish latencies, shared by the worker (writes) and the diagnostics timer (reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processed = self.dropped = self.bad = self.overlays = 0
        self.forward_ms_total = 0.0  # the network's share of the work, to tell it from the node's overhead
        self.last_bad = ""
        self._latencies: list[float] = []
        self._bad_in_period = 0
        self._period_start = time.monotonic()

    def frame_done(self, latency_ms: float, forward_ms: float, overlay: bool) -> None:
        with self._lock:
            self.processed += 1
            self.forward_ms_total += forward_ms
            self.overlays += overlay
            self._latencies.append(latency_ms)

    def frame_dropped(self) -> None:
        with self._lock:
            self.dropped += 1

    def frame_bad(self, reason: str) -> None:
        with self._lock:
            self.bad += 1
            self._bad_in_period += 1
            self.last_bad = reason

    def period(self) -> dict[str, Any]:
        """This period's rate, latency percentiles and bad frames plus the totals; starts the next period."""
        with self._lock:
            now = time.monotonic()
            latencies, bad_in_period, elapsed = self._latencies, self._bad_in_period, now - self._period_start
            self._latencies, self._bad_in_period, self._period_start = [], 0, now
            totals = dict(processed=self.processed, dropped=self.dropped, bad=self.bad, overlays=self.overlays,
                          forward_ms_total=self.forward_ms_total,
                          last_bad=self.last_bad)
        p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (float("nan"), float("nan"))
        return dict(totals, rate=len(latencies) / max(elapsed, 1e-9), p50=float(p50), p95=float(p95),
                    bad_in_period=bad_in_period, seconds=elapsed)


class LaneSegNode(Node):
    """Create it, then `start()` (loads the model; StartupError with a one-line reason), spin, then `stop()`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("lane_seg", **kwargs)
        self._stats = FrameStats()
        self._frame_ready = threading.Condition()
        self._pending: tuple[bytes, float] | None = None  # newest serialised image, perf_counter at receipt
        self._received = 0  # images that arrived (written under _frame_ready)
        self._received_before = 0  # ... at the previous status report
        self._silent_periods = 0  # consecutive status periods with a publisher matched and no image arriving
        self._frames_problem: str | None = None  # why large frames may not arrive (no shared-memory profile)
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._settings_lock = threading.Lock()  # parameter and camera_info callbacks replacing the pipeline
        self._camera_info: tuple | None = None  # the fields of the last usable CameraInfo (to skip unchanged ones)
        self._camera: CameraModel | None = None  # its calibration
        self._waiting_for_camera_info = False

    # ------------------------------------------------------------------------------------------------ start-up

    def start(self) -> None:
        """Declare the parameters, load and warm up the model, create the topics; StartupError when it cannot."""
        try:
            self._values = parameters.declare(
                self, parameters.STARTUP + parameters.OUTPUT + parameters.CAMERA + parameters.GROUND)
            parameters.check_startup(self._values)
        except (ParameterException, ValueError) as exc:
            raise StartupError(f"invalid parameter: {_one_line(exc)}") from None
        self._base_detector, self._model_name = self._load_detector()
        try:
            self._values |= parameters.declare(self, parameters.POSTPROCESS, self._base_detector.post.to_dict())
            self._pipeline = self._build_pipeline(self._values, None)
        except (ParameterException, ValueError) as exc:
            raise StartupError(f"invalid parameter: {_one_line(exc)}") from None
        self._pipeline.frame.detector.warm_up()

        self._lanes_pub = self.create_publisher(LaneArray, "lanes", OUTPUT_QOS)
        self._mask_pub = self.create_publisher(Image, "lanes/instance_mask", OUTPUT_QOS)
        self._markers_pub = self.create_publisher(MarkerArray, "lanes/markers", OUTPUT_QOS)
        self._overlay_pub = self.create_publisher(Image, "lanes/overlay", OUTPUT_QOS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(self._values["diagnostics_period"], self._report)
        self.add_pre_set_parameters_callback(parameters.coerce)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # rclpy keeps this node's -p and parameters-file values in _parameter_overrides (no public accessor)
        for warning in parameters.unknown_parameters(list(getattr(self, "_parameter_overrides", {}))):
            self.get_logger().warning(warning)
        self._worker = threading.Thread(target=self._work, name="lane_seg_worker", daemon=True)
        self._worker.start()

        input_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self._values["qos.depth"], durability=DurabilityPolicy.VOLATILE,
            reliability=ReliabilityPolicy.RELIABLE if self._values["qos.reliability"] == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        # camera_info is best effort whatever the images are: a best-effort reader matches reliable and best-effort
        # (and latched) camera_info publishers alike, where a reliable one would miss a best-effort driver.
        self._camera_info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                                         qos_profile_sensor_data)
        # The image subscription comes last: once it is matched, the node is ready. It takes the serialised
        # message (raw): the worker deserialises only the images it processes, and the executor thread does not
        # hold the GIL for milliseconds per camera frame while the worker needs it.
        self._image_type = CompressedImage if self._values["use_compressed"] else Image
        topic = "image/compressed" if self._values["use_compressed"] else "image"
        self._image_sub = self.create_subscription(self._image_type, topic, self._on_image, input_qos, raw=True)
        prep = self._base_detector.prep
        self.get_logger().info(
            f"ready: lanes from {self._image_sub.topic_name} ({self._values['qos.reliability']}, depth "
            f"{self._values['qos.depth']}), model {self._model_name}, device {self._base_detector.device} "
            f"({self._threads} CPU threads), "
            f"input {prep.input_width}x{prep.input_height}"
        )
        self._frames_problem = fastdds.camera_frames_problem() if uses_fast_dds() else None
        if self._frames_problem:
            self.get_logger().warning(
                f"{self._frames_problem}: camera frames larger than that sent best effort will not arrive (640x360 "
                f"bgr8 is 675 KB). Start the node and the camera driver with "
                f"FASTDDS_DEFAULT_PROFILES_FILE={fastdds.packaged_profile()} (the launch file sets it for the node)")

    def _load_detector(self) -> tuple[LaneDetector, str]:
        try:
            device = resolve_device(self._values["device"])
        except ValueError as exc:
            raise StartupError(f"invalid parameter: device: {exc}") from None
        self._threads = use_cpu_threads(self._values["threads"])
        path = Path(self._values["checkpoint"] or BUILTIN_CHECKPOINT)
        try:
            detector = LaneDetector.from_checkpoint(path, device=str(device))
        except Exception as exc:  # any failure to load is a start-up error with its reason, not a traceback
            raise StartupError(f"cannot load the checkpoint: {_one_line(exc)}") from None
        model = detector.model
        return detector, f"{path.name}" + (f" (SegNet width {model.config.width})" if model is not None else "")

    # ------------------------------------------------------------------------------------------------ settings

    def _build_pipeline(self, values: dict[str, Any], camera: CameraModel | None) -> Pipeline:
        """The detector with these settings; ValueError naming the setting when one is invalid."""
        ground = parameters.ground_config(values)
        enabled = values["ground.enabled"]
        if enabled and not ground.frame_id:
            raise ValueError("ground.frame_id must not be empty while ground.enabled is true")
        camera = CameraModel(ground.intrinsics) if ground.intrinsics else camera
        plane = ground.plane(camera) if enabled else None
        detector = self._base_detector.with_settings(**parameters.postprocess_settings(values)).with_ground_plane(plane)
        waiting = enabled and plane is None
        if waiting and not self._waiting_for_camera_info:
            self.get_logger().info(f"ground plane: waiting for the camera calibration on "
                                   f"{self._camera_info_topic()}")
        self._waiting_for_camera_info = waiting
        return Pipeline(FramePipeline(detector, ground.frame_id, camera), values["publish_overlay"])

    def _camera_info_topic(self) -> str:
        return self.resolve_topic_name("camera_info")

    def _on_set_parameters(self, changed: Sequence[Parameter]) -> SetParametersResult:
        wrong = [problem for problem in map(parameters.type_error, changed) if problem]
        if wrong:
            return SetParametersResult(successful=False, reason="; ".join(wrong))
        ours = {p.name: parameters.value_of(p) for p in changed if p.name in parameters.SPECS}
        fixed = [name for name in ours if not parameters.SPECS[name].runtime]
        if fixed:
            return SetParametersResult(
                successful=False, reason=f"{', '.join(fixed)} is read at start-up: changing it requires a restart")
        if not ours:
            return SetParametersResult(successful=True)
        with self._settings_lock:
            values = self._values | ours
            try:
                pipeline = self._build_pipeline(values, self._camera)
            except ValueError as exc:
                shown = ", ".join(f"{name}={value!r}" for name, value in ours.items())
                return SetParametersResult(successful=False, reason=f"rejected {shown}: {exc}")
            self._values, self._pipeline = values, pipeline  # one assignment: the worker sees old or new, never half
        if "diagnostics_period" in ours:
            self._diagnostics_timer.timer_period_ns = int(ours["diagnostics_period"] * 1e9)
        self.get_logger().info("parameters set: " + ", ".join(f"{n}={v!r}" for n, v in ours.items()))
        return SetParametersResult(successful=True)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        fields = (tuple(msg.k), tuple(msg.d), msg.distortion_model, msg.width, msg.height, tuple(msg.p),
                  self._values["rectified"])
        if fields == self._camera_info:
            return
        with self._settings_lock:
            try:
                camera = CameraModel.from_camera_info(msg.k, msg.d, msg.distortion_model, msg.width, msg.height, msg.p,
                                                      rectified=self._values["rectified"])
                pipeline = self._build_pipeline(self._values, camera)
            except ValueError as exc:
                if self._values["ground.enabled"]:  # else only the markers use it, with a nominal focal length
                    self.get_logger().warning(f"camera_info on {self._camera_info_topic()} is not usable: {exc}",
                                              throttle_duration_sec=WARN_EVERY_S)
                return
            self._camera_info, self._camera, self._pipeline = fields, camera, pipeline
        k = camera.k
        lens = f", {camera.distortion_model} distortion removed" if camera.distorted else ""
        self.get_logger().info(f"camera calibration from {self._camera_info_topic()}: {msg.width}x{msg.height}, "
                               f"fx={k[0, 0]:.1f} fy={k[1, 1]:.1f} cx={k[0, 2]:.1f} cy={k[1, 2]:.1f}{lens}")

    # ------------------------------------------------------------------------------------------------ frames

    def _on_image(self, raw: bytes) -> None:
        received = time.perf_counter()
        with self._frame_ready:
            self._received += 1
            if self._pending is not None:
                self._stats.frame_dropped()
            self._pending = (raw, received)
            self._frame_ready.notify()

    def _work(self) -> None:
        while True:
            with self._frame_ready:
                self._frame_ready.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping:
                    return
                (raw, received), self._pending = self._pending, None
            self._process(raw, received)

    def _process(self, raw: bytes, received: float) -> None:
        pipeline = self._pipeline  # read once: this frame uses one consistent set of settings
        try:
            header, rgb = decode_camera_message(raw, compressed=self._image_type is CompressedImage)
            frame, problem = pipeline.frame.for_size(rgb.shape[1], rgb.shape[0])
            if problem:
                self.get_logger().warning(f"{self._camera_info_topic()}: {problem}", throttle_duration_sec=WARN_EVERY_S)
            detection: Detection = frame.detector(rgb)
            outputs = frame_outputs(detection, header, frame, received)
            self._lanes_pub.publish(outputs.lanes)
            self._mask_pub.publish(outputs.instance_mask)
            self._markers_pub.publish(outputs.markers)
            latency_ms = outputs.lanes.processing_ms
            overlay = pipeline.publish_overlay and self._overlay_pub.get_subscription_count() > 0
            if overlay:
                self._overlay_pub.publish(array_to_image(draw_detection(rgb, detection), header, "rgb8"))
        except ImageError as exc:
            self._bad_frame(str(exc))
        except Exception as exc:  # one frame must never stop the node; it is counted and reported
            if self._stopping or not self.context.ok():
                return
            self._bad_frame(f"{type(exc).__name__}: {_one_line(exc)}")
        else:
            self._stats.frame_done(latency_ms, detection.timings["forward"], overlay)

    def _bad_frame(self, reason: str) -> None:
        self._stats.frame_bad(reason)
        self.get_logger().warning(f"bad frame on {self._image_sub.topic_name} skipped: {reason}",
                                  throttle_duration_sec=WARN_EVERY_S)

    # ------------------------------------------------------------------------------------------------ reports

    def _report(self) -> None:
        self._warn_when_nothing_arrives()
        s = self._stats.period()
        latency = f"latency p50 {s['p50']:.1f} ms p95 {s['p95']:.1f} ms" if s["rate"] > 0 else "no frames"
        line = (f"{s['rate']:.1f} Hz, {latency}; totals: {s['processed']} processed, {s['dropped']} dropped, "
                f"{s['bad']} bad")
        if s["bad_in_period"]:
            self.get_logger().warning(f"{line}; {s['bad_in_period']} bad frames in the last {s['seconds']:.1f} s, "
                                      f"last: {s['last_bad']}")
        else:
            self.get_logger().info(line)
        values = {
            "rate (Hz)": f"{s['rate']:.2f}",
            "latency p50 (ms)": f"{s['p50']:.1f}",
            "latency p95 (ms)": f"{s['p95']:.1f}",
            "frames processed": s["processed"],
            "forward time total (ms)": f"{s['forward_ms_total']:.1f}",
            "frames dropped": s["dropped"],
            "bad frames": s["bad"],
            "bad frames in period": s["bad_in_period"],
            "last bad frame": s["last_bad"],
            "overlays published": s["overlays"],
            "device": str(self._base_detector.device),
            "model": self._model_name,
            "input topic": self._image_sub.topic_name,
        }
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if s["bad_in_period"] else DiagnosticStatus.OK,
            name=f"{self.get_fully_qualified_name()}: lane detection", hardware_id=str(self._base_detector.device),
            message=f"{s['bad_in_period']} bad frames in the last {s['seconds']:.1f} s" if s["bad_in_period"] else line,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics_pub.publish(DiagnosticArray(header=header, status=[status]))

    def _warn_when_nothing_arrives(self) -> None:
        """A camera publisher is matched but no image arrived for two status periods: say why that may be."""
        received = self._received
        publishers = self._image_sub.get_publisher_count()
        self._silent_periods = self._silent_periods + 1 if publishers and received == self._received_before else 0
        self._received_before = received
        if self._silent_periods < 2:
            return
        seconds = self._silent_periods * self._values["diagnostics_period"]
        cause = self._frames_problem or "frames larger than the shared-memory segment of either process are dropped"
        self.get_logger().warning(
            f"{publishers} publisher(s) matched on {self._image_sub.topic_name} but no image arrived in the last "
            f"{seconds:.0f} s. If the camera is publishing, its frames are lost in transport: {cause}. The node and "
            f"the camera driver both need FASTDDS_DEFAULT_PROFILES_FILE={fastdds.packaged_profile()}",
            throttle_duration_sec=SILENCE_WARN_EVERY_S)

    # ------------------------------------------------------------------------------------------------ shutdown

    def stop(self) -> None:
        """Stop the worker; it finishes the frame in hand (however long its forward pass) before the node goes."""
        with self._frame_ready:
            self._stopping = True
            self._frame_ready.notify()
        if self._worker is None:
            return
        self._worker.join(timeout=STOP_NOTICE_S)
        if self._worker.is_alive():
            self.get_logger().info("stopping: waiting for the frame in hand to finish")
            self._worker.join()


def uses_fast_dds() -> bool:
    """Whether this process's RMW is Fast-DDS (the shared-memory profile check applies only there)."""
    return get_rmw_implementation_identifier() == "rmw_fastrtps_cpp"


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the node until Ctrl-C or SIGTERM (exit 0); 1 when it cannot start, with the reason on one line."""
    try:
        rclpy.init(args=argv)
    except Exception as exc:  # e.g. a parameters file that is not valid YAML
        print(f"lane_seg_node: cannot start: {_one_line(exc)}", file=sys.stderr)
        return 1
    node = None
    try:
        node = LaneSegNode()
        node.start()
        rclpy.spin(node)
    except StartupError as exc:
        if not rclpy.ok():  # a signal shut ROS down while the node was starting
            return 0
        node.get_logger().error(f"cannot start: {exc}")
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
