"""`lane-seg bag`: find the lanes in a recorded drive offline; write them with its images to a new rosbag2."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from lane_seg_core.cli import BUILTIN_CHECKPOINT

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

    from lane_seg_core.ground import GroundPlane
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


@dataclass(frozen=True)
class GroundOptions:
    """Lanes on the road (Lane.points_ground) as well: a camera height and pitch, or an image->ground homography.

    With `height`, the camera matrix comes from `intrinsics` or the bag's CameraInfo topic.
    """

    frame: str = "base_footprint"  # Lane.ground_frame_id (the node's ground.frame_id default)
    height: float | None = None  # camera height over the road, m
    pitch: float = 0.0  # rad, positive = looking down
    x_offset: float = 0.0  # camera position in the ground frame, m (x forward, y left)
    y_offset: float = 0.0
    max_distance: float = 80.0  # m ahead of the camera
    homography: Sequence[float] | None = None  # 9 values, image (u, v, 1) -> ground (x, y, 1)

    @property
    def needs_intrinsics(self) -> bool:
        return self.homography is None

    def plane(self, intrinsics: Sequence[float] | None) -> GroundPlane:
        from lane_seg_core.ground import GroundPlane

        if self.homography is not None:
            if len(self.homography) != 9:
                raise ValueError(f"--homography needs 9 values (a 3x3 matrix by rows), got {len(self.homography)}")
            rows = [list(self.homography[i:i + 3]) for i in (0, 3, 6)]
            return GroundPlane.from_homography(rows, self.max_distance, camera_x=self.x_offset)
        if self.height is None:
            raise ValueError("a ground plane needs --camera-height or --homography")
        if intrinsics is None:
            raise ValueError("a ground plane from --camera-height needs the camera matrix: give --intrinsics "
                             "FX FY CX CY or a bag with a sensor_msgs/CameraInfo topic (--camera-info)")
        return GroundPlane.from_camera(intrinsics, self.height, self.pitch, x_offset=self.x_offset,
                                       y_offset=self.y_offset, max_distance=self.max_distance)


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> list[float]:
    """The 9 values of K (CameraInfo.k) for a pinhole camera without skew."""
    return [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]


def read_camera_matrix(reader: Reader, topic: str, bag: Path) -> list[float] | None:
    """K (9 values) from the first CameraInfo on `topic`; None when the topic has none or K is all zeros."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo

    connections = [c for c in reader.connections if c.topic == topic and c.msgtype == CAMERA_INFO]
    for _, _, raw in read_messages(reader, connections, bag):
        k = [float(v) for v in deserialize_message(bytes(raw), CameraInfo).k]
        return k if k[0] > 0 and k[4] > 0 else None
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
    ground: GroundOptions | None = None,
    intrinsics: Sequence[float] | None = None,
    camera_info_topic: str | None = None,
    progress: bool = True,
) -> BagSummary:
    """Find the lanes of every image on `topic` of bag `bag`; write them with the images to a new bag `out`.

    `storage` ('mcap', 'sqlite3') defaults to the input's. Camera intrinsics (for the markers and a ground plane
    from a camera height) come from `intrinsics` or else the first message of `camera_info_topic` (default:
    <image topic's namespace>/camera_info when the bag has it). A frame that cannot be decoded (ImageError) is
    copied, warned about with its timestamp and reason, counted and otherwise skipped.
    """
    import numpy as np
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    from .cdr import decode_camera_message
    from .conversions import ImageError, array_to_image, detection_to_lane_array, lane_markers

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

        if intrinsics is None:
            info_topic = camera_info_topic or camera_info_topic_for(topic, compressed)
            if camera_info_topic is not None and bag_topics(reader).get(info_topic) != CAMERA_INFO:
                raise BagError(f"topic '{info_topic}' in bag '{bag}' is not a sensor_msgs/CameraInfo topic; "
                               f"its topics: {describe_topics(bag_topics(reader))}")
            intrinsics = read_camera_matrix(reader, info_topic, bag)
        plane = ground.plane(intrinsics) if ground is not None else None
        if plane is not None:
            detector = detector.with_ground_plane(plane)
        ground_frame = ground.frame if ground is not None else ""

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

            def flush(batch: list[_Frame]) -> None:
                """Detect a batch's lanes; write each image followed by its results, in time order."""
                nonlocal lanes, written
                good = [f for f in batch if f.rgb is not None]
                detections = iter(detector([f.rgb for f in good]) if good else [])
                for frame in batch:
                    writer.write(image_out, frame.timestamp, frame.raw)
                    written += 1
                    if frame.rgb is None:
                        continue
                    detection = next(detections)
                    lane_array = detection_to_lane_array(detection, frame.header, ground_frame,
                                                         detection.timings["total"])
                    mask = array_to_image(detection.instance_mask, frame.header, "mono8")
                    markers = lane_markers(lane_array.lanes, frame.header, detection.image_size, intrinsics)
                    writer.write(lanes_out, frame.timestamp, serialize_message(lane_array))
                    writer.write(mask_out, frame.timestamp, serialize_message(mask))
                    writer.write(markers_out, frame.timestamp, serialize_message(markers))
                    totals.append(detection.timings["total"])
                    lanes += len(detection.lanes)
                bar.update(len(batch))

            batch: list[_Frame] = []
            for _, timestamp, raw in read_messages(reader, image_connections, bag):
                frame = _Frame(timestamp, bytes(raw))
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
    g = p.add_argument_group(
        "camera and ground plane", "Intrinsics place the markers; --camera-height or --homography also gives each "
                                   "lane points on the road (Lane.points_ground, metres, x forward, y left).")
    g.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="camera matrix in pixels (default: the first message of --camera-info)")
    g.add_argument("--camera-info",
                   help="sensor_msgs/CameraInfo topic in the bag (default: <ns>/camera_info if present)")
    g.add_argument("--camera-height", type=float, help="camera height over a flat road, m")
    g.add_argument("--camera-pitch", type=float, help="camera pitch, rad, positive = looking down (default 0)")
    g.add_argument("--camera-x", type=float, help="camera position ahead of the ground frame's origin, m (default 0)")
    g.add_argument("--camera-y", type=float, help="camera position left of the ground frame's origin, m (default 0)")
    g.add_argument("--homography", type=float, nargs=9, metavar="H",
                   help="image (u, v, 1) -> ground (x, y, 1) 3x3 matrix by rows, instead of --camera-height")
    g.add_argument("--max-distance", type=float, help="drop ground points further ahead than this, m (default 80)")
    g.add_argument("--ground-frame", help="frame id of the ground points (default base_footprint, as the node)")
    p.set_defaults(func=_run_bag)


def _ground_options(args: argparse.Namespace) -> GroundOptions | None:
    """GroundOptions from the command line; None when neither --camera-height nor --homography is given."""
    if args.camera_height is not None and args.homography is not None:
        raise ValueError("give either --camera-height or --homography, not both")
    extra = {"--camera-pitch": args.camera_pitch, "--camera-x": args.camera_x, "--camera-y": args.camera_y,
             "--max-distance": args.max_distance, "--ground-frame": args.ground_frame}
    if args.camera_height is None and args.homography is None:
        given = [name for name, value in extra.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --camera-height or --homography")
        return None
    defaults = GroundOptions()
    return GroundOptions(
        frame=args.ground_frame if args.ground_frame is not None else defaults.frame,
        height=args.camera_height,
        pitch=args.camera_pitch if args.camera_pitch is not None else defaults.pitch,
        x_offset=args.camera_x if args.camera_x is not None else defaults.x_offset,
        y_offset=args.camera_y if args.camera_y is not None else defaults.y_offset,
        max_distance=args.max_distance if args.max_distance is not None else defaults.max_distance,
        homography=args.homography,
    )


def _run_bag(args: argparse.Namespace) -> int:
    ground = _ground_options(args)
    topic = check_bag_job(args.input, args.out, args.topic)  # before the model loads
    from lane_seg_core.inference import LaneDetector

    detector = LaneDetector.from_checkpoint(args.checkpoint, device=args.device)
    if args.lane_threshold is not None:
        detector = detector.with_settings(lane_threshold=args.lane_threshold)
    summary = process_bag(
        args.input, args.out, detector, topic=topic, storage=args.storage, namespace=args.namespace,
        batch_size=args.batch_size, ground=ground,
        intrinsics=intrinsics_matrix(*args.intrinsics) if args.intrinsics else None,
        camera_info_topic=args.camera_info, progress=args.progress,
    )
    print(summary.describe())
    return 0
