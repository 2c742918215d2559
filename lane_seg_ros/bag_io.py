"""rosbag2 access shared by `lane-seg bag` and `lane-seg play`: rosbags reads and writes storage, rclpy does CDR."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:  # rosbags is imported when a command runs: `lane-seg --help` stays fast and works without it
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Reader, Writer
    from rosbags.typesys.store import Typestore

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


class BagError(ValueError):
    """A bag that cannot be used as asked; the message names the bag and, where it applies, the topic."""


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


def describe_topics(topics: dict[str, str]) -> str:
    return ", ".join(f"{t} ({ty or 'several types'})" for t, ty in topics.items()) or "none"


def select_image_topic(topics: dict[str, str], topic: str | None, bag: str | os.PathLike) -> str:
    """The image topic to process: `topic`, or the bag's only Image / CompressedImage topic."""
    images = {t: ty for t, ty in topics.items() if ty in IMAGE_TYPES}
    if topic is None:
        if len(images) == 1:
            return next(iter(images))
        if not images:
            raise BagError(f"bag '{bag}' has no sensor_msgs/Image or sensor_msgs/CompressedImage topic; "
                           f"its topics: {describe_topics(topics)}")
        raise BagError(f"bag '{bag}' has {len(images)} image topics; choose one with --topic: "
                       f"{describe_topics(images)}")
    if topic not in topics:
        raise BagError(f"topic '{topic}' is not in bag '{bag}'; its image topics: {describe_topics(images)}")
    if topics[topic] not in IMAGE_TYPES:
        raise BagError(f"topic '{topic}' in bag '{bag}' carries {topics[topic] or 'several types'}, "
                       f"not sensor_msgs/Image or sensor_msgs/CompressedImage")
    return topic


def read_messages(reader: Reader, connections: Sequence[Connection], bag: Path) -> Iterator[tuple[Connection, int, bytes]]:
    """The connections' messages in time order; a damaged bag is a BagError naming it."""
    try:
        yield from reader.messages(connections=connections)
    except _rosbags_errors() as exc:
        raise BagError(f"bag '{bag}' could not be read to the end: {exc}") from None


def copy_connection(writer: Writer, conn: Connection, typestore: Typestore) -> Connection:
    """An output connection like an input one: same topic, type, QoS and (when recorded) message definition."""
    from rosbags.interfaces import ConnectionExtRosbag2

    qos = conn.ext.offered_qos_profiles if isinstance(conn.ext, ConnectionExtRosbag2) else ()
    if conn.msgdef.data and conn.digest:
        return writer.add_connection(conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest,
                                     offered_qos_profiles=qos)
    return writer.add_connection(conn.topic, conn.msgtype, typestore=typestore, offered_qos_profiles=qos)


def message_class(msgtype: str) -> type:
    """The rclpy message class for 'pkg/msg/Name' (ValueError naming the type when it is not installed)."""
    package, _, name = msgtype.rpartition("/")
    try:
        return getattr(importlib.import_module(package.replace("/", ".")), name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(f"message type '{msgtype}' is not available to rclpy here (install its ROS package)") from None
