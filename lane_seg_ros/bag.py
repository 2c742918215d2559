"""`lane-seg bag`: find the lanes in a recorded drive offline; write them with its images to a new rosbag2."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from lane_seg_core.cli import BUILTIN_CHECKPOINT, add_threads_argument
from lane_seg_core.ground import GroundConfig
from lane_seg_core.settings import settings_of

from .bag_io import (
    BAG_VERSION,
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    LANE_ARRAY,
    MARKER_ARRAY,
    STORAGES,
    BagError,
    bag_storage,
    bag_topics,
    copy_connection,
    describe_topics,
    lane_typestore,
    open_bag,
    read_messages,
    select_image_topic,
)

if TYPE_CHECKING:  # rclpy, rosbags and torch are imported when the command runs
    from rosbags.rosbag2 import Reader

    from lane_seg_core.camera import CameraModel
    from lane_seg_core.inference import LaneDetector


@dataclass(frozen=True)
class OutputTopics:
    """Where `lane-seg bag` writes one image topic's results."""

    lanes: str
    instance_mask: str
    markers: str

    def __iter__(self) -> Iterator[str]:
        return iter((self.lanes, self.instance_mask, self.markers))


def output_topics(image_topic: str, namespace: str | None = None, compressed: bool = False) -> OutputTopics:
    """<ns>/lanes, <ns>/lanes/instance_mask, <ns>/lanes/markers for an image topic.

    <ns> is `namespace` when given ('' or '/' for the root), else the image topic's namespace; a compressed
    topic named after image_transport (<raw topic>/compressed) counts as its raw topic.
    """
    if namespace is None:
        base = image_topic.rstrip("/")
        if compressed and base.endswith("/compressed"):
            base = base[: -len("/compressed")]
        namespace = base.rsplit("/", 1)[0] if "/" in base else ""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return OutputTopics(f"{ns}/lanes", f"{ns}/lanes/instance_mask", f"{ns}/lanes/markers")


def camera_info_topic_for(image_topic: str, compressed: bool = False) -> str:
    """The CameraInfo topic beside an image topic: /camera/image_raw -> /camera/camera_info."""
    base = image_topic.rstrip("/")
    if compressed and base.endswith("/compressed"):
        base = base[: -len("/compressed")]
    parent = base.rsplit("/", 1)[0] if "/" in base else ""
    return f"{parent}/camera_info"


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> list[float]:
    """The 9 values of K (CameraInfo.k) for a pinhole camera without skew."""
    return [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]


def read_camera_model(reader: Reader, topic: str, bag: Path, rectified: bool = False) -> CameraModel | None:
    """The calibration in the first CameraInfo on `topic`; None when the topic has none.

    BagError naming the topic when that CameraInfo is not usable (K all zero: an uncalibrated camera, an unknown
    distortion model, ...).
    """
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo

    from lane_seg_core.camera import CameraModel

    connections = [c for c in reader.connections if c.topic == topic and c.msgtype == CAMERA_INFO]
    if not connections:  # (an empty list would read every message of the bag)
        return None
    for _, timestamp, raw in read_messages(reader, connections, bag):
        info = deserialize_message(bytes(raw), CameraInfo)
        try:
            return CameraModel.from_camera_info(info.k, info.d, info.distortion_model, info.width, info.height,
                                                info.p, rectified=rectified)
        except ValueError as exc:
            raise BagError(f"{topic} in bag '{bag}' (the first message, t={timestamp} ns): {exc}; give --intrinsics "
                           "instead") from None
    return None


@dataclass
class BagSummary:
    """What `lane-seg bag` did."""

    frames: int  # images read from the topic (all are copied to the output)
    bad_frames: int  # images that could not be decoded: copied, but without lanes
    lanes: int  # lanes found in all frames
    median_ms: float  # LaneDetector time per processed frame (median; nan when none)
    out: Path
    storage: str
    topic: str
    outputs: OutputTopics
    interrupted: bool = False

    @property
    def processed(self) -> int:
        return self.frames - self.bad_frames

    def describe(self) -> str:
        median = f"{self.median_ms:.1f} ms/frame" if math.isfinite(self.median_ms) else "n/a"
        return "\n".join([
            f"frames={self.frames} lanes={self.lanes} ({self.lanes / max(self.processed, 1):.2f} per frame) "
            f"bad_frames={self.bad_frames} median={median}" + (" (interrupted)" if self.interrupted else ""),
            f"wrote {self.out} ({self.storage}): {self.topic} -> {', '.join(self.outputs)}",
        ])


@dataclass
class _Frame:
    timestamp: int
    raw: bytes
    received: float  # time.perf_counter() when it was read from the bag
    header: object | None = None  # std_msgs/Header
    rgb: object | None = None  # np.ndarray, None for a bad frame


def check_bag_job(bag: str | os.PathLike, out: str | os.PathLike, topic: str | None = None) -> str:
    """Fail fast (before the model loads): the bag opens, the image topic exists, OUT does not. The topic."""
    bag, out = Path(bag), Path(out)
    with open_bag(bag) as reader:
        chosen = select_image_topic(bag_topics(reader), topic, bag)
    if out.exists():
        raise FileExistsError(f"output '{out}' exists already; choose another --out or delete it")
    return chosen


def process_bag(
    bag: str | os.PathLike,
    out: str | os.PathLike,
    detector: LaneDetector,
    *,
    topic: str | None = None,
    storage: str | None = None,
    namespace: str | None = None,
    batch_size: int = 8,
    ground: GroundConfig | None = None,
    intrinsics: Sequence[float] | None = None,
    camera_info_topic: str | None = None,
    rectified: bool = False,
    progress: bool = True,
) -> BagSummary:
    """Find the lanes of every image on `topic` of bag `bag`; write them with the images to a new bag `out`.

    `storage` ('mcap', 'sqlite3') defaults to the input's. The camera calibration (for the markers and a ground
    plane from a camera height) comes from `intrinsics` or else the first message of `camera_info_topic` (default:
    <image topic's namespace>/camera_info when the bag has it), with its lens distortion unless `rectified`. A frame
    that cannot be decoded (ImageError) is copied, warned about with its timestamp and reason, counted and otherwise
    skipped; a frame of another size than the calibration's gets no ground points (warned about once per size).
    """
    import numpy as np
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    from lane_seg_core.camera import CameraModel

    from .cdr import decode_camera_message
    from .conversions import ImageError
    from .frame import FramePipeline, frame_outputs

    bag, out = Path(bag), Path(out)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    if storage is not None and storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got '{storage}'")
    if out.exists():
        raise FileExistsError(f"output '{out}' exists already; choose another --out or delete it")
    typestore = lane_typestore()

    with open_bag(bag) as reader:
        storage = storage or bag_storage(bag)
        topic = select_image_topic(bag_topics(reader), topic, bag)
        msgtype = bag_topics(reader)[topic]
        compressed = msgtype == COMPRESSED_IMAGE
        outputs = output_topics(topic, namespace, compressed)
        if topic in outputs:
            raise BagError(f"image topic '{topic}' is also an output topic; choose another --namespace")
        image_connections = [c for c in reader.connections if c.topic == topic]

        if intrinsics is not None:
            camera = CameraModel(np.asarray(intrinsics, dtype=np.float64))
        else:
            info_topic = camera_info_topic or camera_info_topic_for(topic, compressed)
            if camera_info_topic is not None and bag_topics(reader).get(info_topic) != CAMERA_INFO:
                raise BagError(f"topic '{info_topic}' in bag '{bag}' is not a sensor_msgs/CameraInfo topic; "
                               f"its topics: {describe_topics(bag_topics(reader))}")
            camera = read_camera_model(reader, info_topic, bag, rectified)
        plane = ground.plane(camera) if ground is not None else None
        if ground is not None and plane is None:
            raise ValueError("a ground plane from --camera-height needs the camera matrix: give --intrinsics "
                             "FX FY CX CY or a bag with a sensor_msgs/CameraInfo topic (--camera-info)")
        pipeline = FramePipeline(detector if plane is None else detector.with_ground_plane(plane),
                                 ground.frame_id if ground else "", camera)
        warned_sizes: set[tuple[int, int]] = set()

        writer = Writer(out, version=BAG_VERSION,
                        storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
        writer.open()
        totals: list[float] = []
        frames = bad = lanes = written = 0
        bar = tqdm(total=sum(c.msgcount for c in image_connections) or None, unit="frame", file=sys.stderr,
                   disable=not progress, desc="bag")
        try:
            image_out = copy_connection(writer, image_connections[0], typestore)
            lanes_out = writer.add_connection(outputs.lanes, LANE_ARRAY, typestore=typestore)
            mask_out = writer.add_connection(outputs.instance_mask, IMAGE, typestore=typestore)
            markers_out = writer.add_connection(outputs.markers, MARKER_ARRAY, typestore=typestore)

            def for_frame(frame: _Frame) -> FramePipeline:
                """The pipeline for this frame's size (a calibration for another size is not used; said once)."""
                size = (frame.rgb.shape[1], frame.rgb.shape[0])
                fitted, problem = pipeline.for_size(*size)
                if problem and size not in warned_sizes:
                    warned_sizes.add(size)
                    tqdm.write(f"lane-seg bag: warning: {topic} frame at t={frame.timestamp / 1e9:.9f} s: {problem}",
                               file=sys.stderr)
                return fitted

            def flush(batch: list[_Frame]) -> None:
                """Detect a batch's lanes; write each image followed by its results, in time order."""
                nonlocal lanes, written
                good = [f for f in batch if f.rgb is not None]
                fitted = {id(f): for_frame(f) for f in good}
                detections = {}
                for group in {id(p): p for p in fitted.values()}.values():  # one network batch per pipeline
                    members = [f for f in good if fitted[id(f)] is group]
                    detections.update(zip(map(id, members), group.detector([f.rgb for f in members])))
                for frame in batch:
                    writer.write(image_out, frame.timestamp, frame.raw)
                    written += 1
                    if frame.rgb is None:
                        continue
                    detection = detections[id(frame)]
                    result = frame_outputs(detection, frame.header, fitted[id(frame)], frame.received)
                    writer.write(lanes_out, frame.timestamp, serialize_message(result.lanes))
                    writer.write(mask_out, frame.timestamp, serialize_message(result.instance_mask))
                    writer.write(markers_out, frame.timestamp, serialize_message(result.markers))
                    totals.append(detection.timings["total"])
                    lanes += len(detection.lanes)
                bar.update(len(batch))

            batch: list[_Frame] = []
            for _, timestamp, raw in read_messages(reader, image_connections, bag):
                frame = _Frame(timestamp, bytes(raw), time.perf_counter())
                frames += 1
                try:
                    frame.header, frame.rgb = decode_camera_message(frame.raw, compressed)
                except ImageError as exc:
                    bad += 1
                    tqdm.write(f"lane-seg bag: warning: {topic} frame at t={timestamp / 1e9:.9f} s "
                               f"({timestamp} ns) skipped: {exc}", file=sys.stderr)
                batch.append(frame)
                if len(batch) == batch_size:
                    flush(batch)
                    batch = []
            flush(batch)
        except KeyboardInterrupt:
            bar.close()
            writer.close()  # a valid bag with the frames done so far
            tqdm.write(f"lane-seg bag: interrupted; {out} holds the first {written} frames", file=sys.stderr)
            raise
        except BaseException:
            bar.close()
            writer.abort()
            shutil.rmtree(out, ignore_errors=True)  # OUT did not exist before: no half-written bag is left
            raise
        bar.close()
        writer.close()
    median = float(np.median(totals)) if totals else math.nan
    return BagSummary(frames, bad, lanes, median, out, storage, topic, outputs)


def add_bag_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bag", help="find the lanes in a rosbag2 (mcap or sqlite3) offline; write a new bag with images and lanes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run every image of one camera topic of a rosbag2 through the lane detector and write a new bag:\n"
                    "the input images unchanged plus, at each image's timestamp and with its header,\n"
                    "  <ns>/lanes                  lane_seg/msg/LaneArray\n"
                    "  <ns>/lanes/instance_mask    sensor_msgs/msg/Image, mono8: 0 background, k = lane id k\n"
                    "  <ns>/lanes/markers          visualization_msgs/msg/MarkerArray\n"
                    "A frame that cannot be decoded is copied, reported with its timestamp and skipped.",
        epilog="<ns> is the image topic's namespace: /camera/image_raw -> /camera/lanes, /camera/lanes/instance_mask,\n"
               "/camera/lanes/markers (a compressed topic /camera/image_raw/compressed likewise);\n"
               "--namespace / writes /lanes, ... like the node in the root namespace.\n\n"
               "example: lane-seg bag drive_2026_11_25 --out drive_lanes --device cuda\n"
               "         lane-seg bag drive.mcap --out drive_lanes --topic /front/image_raw/compressed \\\n"
               "             --camera-height 1.45 --camera-pitch 0.03 --ground-frame base_footprint",
    )
    p.add_argument("input", help="rosbag2 folder (with metadata.yaml), or a single .mcap or .db3 file")
    p.add_argument("--out", required=True, help="the new bag (a folder; must not exist)")
    p.add_argument("--checkpoint", default=str(BUILTIN_CHECKPOINT), help="checkpoint or .onnx (default: built-in)")
    p.add_argument("--topic", help="sensor_msgs/Image or CompressedImage topic (default: the bag's only image topic)")
    p.add_argument("--namespace", help="namespace of the output topics (default: the image topic's)")
    p.add_argument("--storage", choices=STORAGES, help="storage of the new bag (default: the input's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=8, help="images per network batch")
    p.add_argument("--lane-threshold", type=float, help="override the checkpoint's lane probability threshold")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    add_threads_argument(p)
    g = p.add_argument_group(
        "camera and ground plane", "Intrinsics place the markers; --camera-height or --homography also gives each "
                                   "lane points on the road (Lane.points_ground, metres, x forward, y left).")
    g.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="camera matrix in pixels (default: the first message of --camera-info)")
    g.add_argument("--camera-info",
                   help="sensor_msgs/CameraInfo topic in the bag (default: <ns>/camera_info if present)")
    for flag, name in GROUND_FLAGS.items():
        setting = GROUND_SETTINGS[name]
        unit = f"{setting.info.unit}, " if setting.info.unit else ""
        if name == "homography":
            g.add_argument(flag, type=float, nargs=9, metavar="H",
                           help=f"{setting.info.description.split(';')[0]}, instead of --camera-height")
        elif name == "height":
            g.add_argument(flag, type=float, help=f"{setting.info.description} ({unit}in {setting.info.bounds}); "
                                                  "gives each lane ground points")
        else:
            g.add_argument(flag, type=setting.type, help=f"{setting.info.description} ({unit}default {setting.default})")
    g.add_argument("--rectified", action="store_true",
                   help="the images are rectified: use the CameraInfo's P and ignore its lens distortion")
    p.set_defaults(func=_run_bag)


# `lane-seg bag` flag -> GroundConfig field (its description, unit, default and range come from there)
GROUND_FLAGS = {"--camera-height": "height", "--camera-pitch": "pitch", "--camera-x": "x_offset",
                "--camera-y": "y_offset", "--homography": "homography", "--max-distance": "max_distance",
                "--ground-frame": "frame_id"}
GROUND_SETTINGS = {s.name: s for s in settings_of(GroundConfig)}


def _ground_config(args: argparse.Namespace) -> GroundConfig | None:
    """The ground plane settings of the command line; None when neither --camera-height nor --homography is given."""
    if args.camera_height is not None and args.homography is not None:
        raise ValueError("give either --camera-height or --homography, not both")
    given = {flag: getattr(args, flag[2:].replace("-", "_")) for flag in GROUND_FLAGS}
    given = {flag: value for flag, value in given.items() if value is not None}
    if args.camera_height is None and args.homography is None:
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --camera-height or --homography")
        return None
    try:
        return GroundConfig(**{GROUND_FLAGS[flag]: value for flag, value in given.items()})
    except ValueError as exc:  # name the flag, not the field
        message = str(exc)
        for flag, name in GROUND_FLAGS.items():
            message = message.replace(f"GroundConfig.{name} ", f"{flag} ").replace(f"GroundPlane.{name} ", f"{flag} ")
        raise ValueError(message) from None


def _run_bag(args: argparse.Namespace) -> int:
    ground = _ground_config(args)
    topic = check_bag_job(args.input, args.out, args.topic)  # before the model loads
    from lane_seg_core.inference import LaneDetector
    from lane_seg_core.threads import use_cpu_threads

    use_cpu_threads(args.threads)
    detector = LaneDetector.from_checkpoint(args.checkpoint, device=args.device)
    if args.lane_threshold is not None:
        detector = detector.with_settings(lane_threshold=args.lane_threshold)
    summary = process_bag(
        args.input, args.out, detector, topic=topic, storage=args.storage, namespace=args.namespace,
        batch_size=args.batch_size, ground=ground,
        intrinsics=intrinsics_matrix(*args.intrinsics) if args.intrinsics else None,
        camera_info_topic=args.camera_info, rectified=args.rectified, progress=args.progress,
    )
    print(summary.describe())
    return 0
