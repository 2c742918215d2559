"""Lanes for recorded drives (`lane-seg bag`) and a bag player for machines without ros2cli (`lane-seg play`).

`lane-seg bag IN --out OUT` reads a rosbag2 (mcap or sqlite3 storage), runs every camera image of one topic
through the same LaneDetector as the node and writes a new bag OUT with the input images (same topic, type,
raw bytes, timestamps and QoS) and, at each image's receive timestamp and with the image's header:

    <ns>/lanes                  lane_seg/msg/LaneArray
    <ns>/lanes/instance_mask    sensor_msgs/msg/Image, mono8: 0 background, k = the pixels of lane id k
    <ns>/lanes/markers          visualization_msgs/msg/MarkerArray

<ns> is the namespace of the image topic, so the lanes sit next to the camera that saw them:
/camera/image_raw -> /camera/lanes; an image_transport compressed topic counts as its raw topic
(/camera/image_raw/compressed -> /camera/lanes). `--namespace` sets <ns> itself (`--namespace /` gives
/lanes, ..., the live node's topics when it runs in the root namespace).

`lane-seg play BAG` publishes a bag's camera images as recorded (raw CDR bytes, so the header stamps are the
original ones) with the bag's timing scaled by --rate: `ros2 bag play` for machines without ros2cli.

Messages are (de)serialised by rclpy (the CDR the node itself uses); rosbags only reads and writes storage.
rclpy, rosbags and torch are imported when a command runs, so `lane-seg --help` and the core commands start
fast and work without the ROS wheels.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import math
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from lane_seg_core.cli import BUILTIN_CHECKPOINT

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Reader, Writer
    from rosbags.typesys.store import Typestore

    from lane_seg_core.ground import GroundPlane
    from lane_seg_core.inference import LaneDetector

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
LANE_ARRAY = "lane_seg/msg/LaneArray"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
LANE_MESSAGES = ("Lane", "LaneArray")  # lane_seg/msg definitions, dependencies first
STORAGES = ("mcap", "sqlite3")
SUFFIX_STORAGE = {".mcap": "mcap", ".db3": "sqlite3"}  # single-file bags (no metadata.yaml)
BAG_VERSION = 9  # rosbag2 metadata version written (ROS 2 Jazzy and later read it)
PLAYER_NODE = "lane_seg_player"
PLAYER_QOS_DEPTH = 10  # reliable keep-last 10: matches reliable and best-effort (sensor-data) subscriptions


class BagError(ValueError):
    """A bag that cannot be used as asked; the message names the bag and, where it applies, the topic."""


# ---------------------------------------------------------------------------------------------------------------
# Topics, message definitions, bag access
# ---------------------------------------------------------------------------------------------------------------


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


def lane_msg_dir() -> Path:
    """The folder with lane_seg's Lane.msg and LaneArray.msg.

    Looked for, in this order: the installed package's share/lane_seg/msg found through the ament index
    (a colcon or apt install with its setup sourced), the share folder of the prefix the generated `lane_seg`
    Python messages are installed in (a venv or an install whose setup was not sourced), and the msg/ folder
    of the source checkout this file is in.
    """
    candidates: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("lane_seg")) / "msg")
    except (ImportError, LookupError, OSError):  # not installed, or AMENT_PREFIX_PATH unset
        pass
    spec = importlib.util.find_spec("lane_seg")
    if spec is not None and spec.origin:
        # <prefix>/lib/pythonX.Y/site-packages/lane_seg/__init__.py -> <prefix>/share/lane_seg/msg
        candidates.append(Path(spec.origin).resolve().parents[4] / "share" / "lane_seg" / "msg")
    candidates.append(Path(__file__).resolve().parents[1] / "msg")
    for folder in candidates:
        if all((folder / f"{name}.msg").is_file() for name in LANE_MESSAGES):
            return folder
    raise FileNotFoundError(
        "lane_seg's message definitions (Lane.msg, LaneArray.msg) were not found in "
        + ", ".join(str(c) for c in candidates)
    )


def _store_for_this_ros():
    """rosbags' type store of the ROS distribution in use (ROS_DISTRO; Kilted, the PyPI wheels', otherwise)."""
    from rosbags.typesys import Stores

    distro = os.environ.get("ROS_DISTRO", "").strip().upper()
    for name in ([f"ROS2_{distro}"] if distro else []) + ["ROS2_KILTED"]:
        if hasattr(Stores, name):
            return getattr(Stores, name)
    return Stores.LATEST


@functools.lru_cache(maxsize=None)
def lane_typestore() -> Typestore:
    """A rosbags type store with the standard messages and lane_seg/msg/Lane, LaneArray registered."""
    from rosbags.typesys import get_types_from_msg, get_typestore

    store = get_typestore(_store_for_this_ros())
    folder = lane_msg_dir()
    types = {}
    for name in LANE_MESSAGES:
        types.update(get_types_from_msg((folder / f"{name}.msg").read_text(encoding="utf-8"), f"lane_seg/msg/{name}"))
    store.register(types)
    return store


def _rosbags_errors() -> tuple[type[BaseException], ...]:
    """What rosbags raises for a file that is not a readable bag (its own errors, sqlite's, bad metadata)."""
    from rosbags.rosbag2 import ReaderError

    return ReaderError, sqlite3.Error, KeyError, TypeError, UnicodeDecodeError


@contextmanager
def open_bag(path: str | os.PathLike) -> Iterator[Reader]:
    """An open rosbags Reader for a bag folder (metadata.yaml) or a single .mcap / .db3 file."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag '{path}' does not exist")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"'{path}' is not a rosbag2 bag: the folder has no metadata.yaml")
    if not path.is_dir() and path.suffix not in SUFFIX_STORAGE:
        raise BagError(f"'{path}' is not a rosbag2 bag: expected a bag folder (with metadata.yaml) "
                       f"or a .mcap or .db3 file")
    try:
        reader = Reader(path)
        reader.open()
    except _rosbags_errors() as exc:
        raise BagError(f"'{path}' could not be read as a rosbag2 bag: {exc}") from None
    try:
        yield reader
    finally:
        reader.close()


def bag_storage(path: str | os.PathLike) -> str:
    """'mcap' or 'sqlite3': the storage of a bag folder (from its metadata.yaml) or of a single file."""
    path = Path(path)
    if not path.is_dir():
        if path.suffix not in SUFFIX_STORAGE:
            raise BagError(f"'{path}' is not a .mcap or .db3 file")
        return SUFFIX_STORAGE[path.suffix]
    from ruamel.yaml import YAML  # a rosbags dependency

    try:
        metadata = YAML(typ="safe").load((path / "metadata.yaml").read_text(encoding="utf-8"))
        storage = metadata["rosbag2_bagfile_information"]["storage_identifier"]
    except (KeyError, TypeError, ValueError) as exc:
        raise BagError(f"'{path}/metadata.yaml' has no storage_identifier: {exc}") from None
    if storage not in STORAGES:
        raise BagError(f"'{path}' uses storage '{storage}'; only {' and '.join(STORAGES)} are supported")
    return storage


def bag_topics(reader: Reader) -> dict[str, str]:
    """Topic -> message type ('' where one topic carries several types)."""
    return {topic: info.msgtype or "" for topic, info in sorted(reader.topics.items())}


def _describe_topics(topics: dict[str, str]) -> str:
    return ", ".join(f"{t} ({ty or 'several types'})" for t, ty in topics.items()) or "none"


def select_image_topic(topics: dict[str, str], topic: str | None, bag: str | os.PathLike) -> str:
    """The image topic to process: `topic`, or the bag's only Image / CompressedImage topic."""
    images = {t: ty for t, ty in topics.items() if ty in IMAGE_TYPES}
    if topic is None:
        if len(images) == 1:
            return next(iter(images))
        if not images:
            raise BagError(f"bag '{bag}' has no sensor_msgs/Image or sensor_msgs/CompressedImage topic; "
                           f"its topics: {_describe_topics(topics)}")
        raise BagError(f"bag '{bag}' has {len(images)} image topics; choose one with --topic: "
                       f"{_describe_topics(images)}")
    if topic not in topics:
        raise BagError(f"topic '{topic}' is not in bag '{bag}'; its image topics: {_describe_topics(images)}")
    if topics[topic] not in IMAGE_TYPES:
        raise BagError(f"topic '{topic}' in bag '{bag}' carries {topics[topic] or 'several types'}, "
                       f"not sensor_msgs/Image or sensor_msgs/CompressedImage")
    return topic


def _messages(reader: Reader, connections: Sequence[Connection], bag: Path) -> Iterator[tuple[Connection, int, bytes]]:
    """The connections' messages in time order; a damaged bag is a BagError naming it."""
    try:
        yield from reader.messages(connections=connections)
    except _rosbags_errors() as exc:
        raise BagError(f"bag '{bag}' could not be read to the end: {exc}") from None


def _copy_connection(writer: Writer, conn: Connection, typestore: Typestore) -> Connection:
    """An output connection like an input one: same topic, type, QoS and (when recorded) message definition."""
    from rosbags.interfaces import ConnectionExtRosbag2

    qos = conn.ext.offered_qos_profiles if isinstance(conn.ext, ConnectionExtRosbag2) else ()
    if conn.msgdef.data and conn.digest:
        return writer.add_connection(conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest,
                                     offered_qos_profiles=qos)
    return writer.add_connection(conn.topic, conn.msgtype, typestore=typestore, offered_qos_profiles=qos)


# ---------------------------------------------------------------------------------------------------------------
# lane-seg bag
# ---------------------------------------------------------------------------------------------------------------


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
    for _, _, raw in _messages(reader, connections, bag):
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
    from rclpy.serialization import deserialize_message, serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from sensor_msgs.msg import CompressedImage, Image
    from tqdm import tqdm

    from .conversions import (ImageError, array_to_image, compressed_to_rgb, detection_to_lane_array, image_to_rgb,
                              lane_markers)

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
        message_class = CompressedImage if compressed else Image
        to_rgb = compressed_to_rgb if compressed else image_to_rgb
        outputs = output_topics(topic, namespace, compressed)
        if topic in outputs:
            raise BagError(f"image topic '{topic}' is also an output topic; choose another --namespace")
        image_connections = [c for c in reader.connections if c.topic == topic]

        if intrinsics is None:
            info_topic = camera_info_topic or camera_info_topic_for(topic, compressed)
            if camera_info_topic is not None and bag_topics(reader).get(info_topic) != CAMERA_INFO:
                raise BagError(f"topic '{info_topic}' in bag '{bag}' is not a sensor_msgs/CameraInfo topic; "
                               f"its topics: {_describe_topics(bag_topics(reader))}")
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
            image_out = _copy_connection(writer, image_connections[0], typestore)
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
            for _, timestamp, raw in _messages(reader, image_connections, bag):
                frame = _Frame(timestamp, bytes(raw))
                frames += 1
                try:
                    try:
                        msg = deserialize_message(frame.raw, message_class)
                    except RuntimeError as exc:  # rclpy's RMWError: truncated or malformed CDR
                        raise ImageError(f"not a valid {msgtype} message ({exc})") from None
                    frame.header, frame.rgb = msg.header, to_rgb(msg)
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


# ---------------------------------------------------------------------------------------------------------------
# lane-seg play
# ---------------------------------------------------------------------------------------------------------------


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


def message_class(msgtype: str) -> type:
    """The rclpy message class for 'pkg/msg/Name' (ValueError naming the type when it is not installed)."""
    package, _, name = msgtype.rpartition("/")
    try:
        return getattr(importlib.import_module(package.replace("/", ".")), name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(f"message type '{msgtype}' is not available to rclpy here (install its ROS package)") from None


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops playback like Ctrl-C (main thread only; elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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

    `topics` default to all Image and CompressedImage topics. Playback starts once any publisher has a
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
                               f"not in bag '{bag}'; its topics: {_describe_topics(available)}")
            selected = list(dict.fromkeys(topics))
        else:
            selected = [t for t, ty in available.items() if ty in IMAGE_TYPES]
            if not selected:
                raise BagError(f"bag '{bag}' has no Image or CompressedImage topic; choose topics with --topic: "
                               f"{_describe_topics(available)}")
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
            with _sigterm_as_interrupt():
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
        for conn, timestamp, raw in _messages(reader, connections, bag):
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
                   help="topic to play; repeat for several (default: every Image and CompressedImage topic)")
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
