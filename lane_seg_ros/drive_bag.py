"""`lane-seg drive`: a synthetic drive as a rosbag2 of camera frames, its ground-truth lanes kept in the bag folder."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from lane_seg_core.drive import DEFAULT_SEED, DriveConfig, drive_config

from .bag_io import BAG_VERSION, CAMERA_INFO, IMAGE, STORAGES

DEFAULT_TOPIC = "/camera/image_raw"
CAMERA_FRAME = "camera"
START_NS = 1_795_608_000 * 10**9  # the drive's first stamp: 2026-11-25 12:00:00 UTC (fixed: the bag is reproducible)
LABEL_FILE = "label_data_drive.json"  # tuSimple lines, one per frame, raw_file = frame_key(topic, stamp)
INFO_FILE = "drive.json"  # how the drive was made: seed, timing, topics, camera


def frame_key(topic: str, stamp_ns: int) -> str:
    """The tuSimple raw_file naming one camera frame of a bag: '<topic without leading />/<stamp in ns>'."""
    return f"{topic.lstrip('/')}/{stamp_ns}"


def stamp_ns(sec: int, nanosec: int) -> int:
    """A header stamp as nanoseconds."""
    return int(sec) * 10**9 + int(nanosec)


@dataclass(frozen=True)
class DriveInfo:
    """What `write_drive_bag` wrote (also stored as drive.json in the bag folder)."""

    seed: int
    frames: int
    fps: float
    topic: str
    camera_info_topic: str
    camera_height: float  # m over the road
    camera_pitch: float  # rad, positive = looking down
    camera_k: list[float]  # the camera matrix, 9 values by rows (CameraInfo.k)
    first_stamp_ns: int
    config: dict  # the DriveConfig's fields

    @classmethod
    def read(cls, bag: str | os.PathLike) -> DriveInfo:
        """The drive.json of a drive bag; ValueError naming the file when it is not one this version wrote."""
        path = Path(bag) / INFO_FILE
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path}: not a drive description written by this version of lane-seg drive "
                             f"({exc})") from None


def planned_drive(seed: int, config: DriveConfig, topic: str = DEFAULT_TOPIC) -> DriveInfo:
    """What `write_drive_bag` will write for these settings (without rendering anything)."""
    from lane_seg_core.drive import drive_scenes

    if not topic.startswith("/") or topic.endswith("/"):
        raise ValueError(f"topic must be an absolute topic name like /camera/image_raw, got '{topic}'")
    camera = drive_scenes(seed, config)[0].camera
    k = [camera.focal, 0.0, camera.cx, 0.0, camera.focal, camera.cy, 0.0, 0.0, 1.0]
    return DriveInfo(seed, config.frames, config.fps, topic, topic.rsplit("/", 1)[0] + "/camera_info",
                     camera.height, camera.pitch, k, START_NS, asdict(config))


def is_drive_bag(bag: str | os.PathLike) -> bool:
    """True for a complete bag written by `write_drive_bag` (metadata, labels and drive.json present)."""
    bag = Path(bag)
    return all((bag / name).is_file() for name in ("metadata.yaml", LABEL_FILE, INFO_FILE))


def write_drive_bag(
    out: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    config: DriveConfig = DriveConfig(),
    *,
    topic: str = DEFAULT_TOPIC,
    storage: str = "mcap",
    workers: int = 2,
    progress: bool = True,
) -> DriveInfo:
    """Render a continuous synthetic drive into a new bag `out`: bgr8 Image and CameraInfo per frame.

    The folder also gets label_data_drive.json (the tuSimple ground truth of every frame, keyed by
    `frame_key`) and drive.json. The bag appears under `out` only once complete.
    """
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header
    from tqdm import tqdm

    from lane_seg_core.drive import render_drive
    from lane_seg_core.tusimple import H_SAMPLES
    from lane_seg_core.tusimple import LaneRecord, write_records

    from .bag_io import lane_typestore
    from .conversions import array_to_image

    out = Path(out)
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got '{storage}'")
    if out.exists():
        raise FileExistsError(f"output '{out}' exists already; choose another --out or delete it")
    info = planned_drive(seed, config, topic)
    frames, info_topic, k = info.frames, info.camera_info_topic, info.camera_k

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        bag = staging / out.name  # rosbag2 names its files after the folder: keep the final name
        typestore = lane_typestore()
        records = []
        with Writer(bag, version=BAG_VERSION,
                    storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3) as writer:
            image_out = writer.add_connection(topic, IMAGE, typestore=typestore)
            info_out = writer.add_connection(info_topic, CAMERA_INFO, typestore=typestore)
            bar = tqdm(total=frames, unit="frame", desc="drive", file=sys.stderr, disable=not progress,
                       mininterval=0.5 if sys.stderr.isatty() else 5.0)  # a log file gets a line every 5 s
            for index, bgr, lanes in render_drive(seed, config, workers=workers):
                stamp = START_NS + round(index * 1e9 / config.fps)
                header = Header(frame_id=CAMERA_FRAME)
                header.stamp.sec, header.stamp.nanosec = divmod(stamp, 10**9)
                height, width = bgr.shape[:2]
                camera_info = CameraInfo(header=header, height=height, width=width, distortion_model="plumb_bob",
                                         d=[0.0] * 5, k=k, r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                                         p=[*k[0:3], 0.0, *k[3:6], 0.0, *k[6:9], 0.0])
                # calibration first: a node that needs it for metric lanes has it by the first image
                writer.write(info_out, stamp, serialize_message(camera_info))
                writer.write(image_out, stamp, serialize_message(array_to_image(bgr, header, "bgr8")))
                records.append(LaneRecord(frame_key(topic, stamp), tuple(H_SAMPLES), tuple(map(tuple, lanes))))
                bar.update(1)
            bar.close()
        write_records(bag / LABEL_FILE, records)
        (bag / INFO_FILE).write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
        os.replace(bag, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


def add_drive_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drive", help="render a synthetic drive into a rosbag2 of camera frames, with its ground-truth lanes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Render a continuous synthetic drive (curves, a lane change, dashed lanes, shadows) into a new\n"
                    "rosbag2: sensor_msgs/Image bgr8 1280x720 on --topic and sensor_msgs/CameraInfo beside it,\n"
                    f"stamped from 2026-11-25 12:00:00 UTC. The bag folder also holds {LABEL_FILE} (tuSimple\n"
                    f"ground truth per frame, raw_file = '<topic>/<stamp ns>') and {INFO_FILE}.",
        epilog="example: lane-seg drive --out drive --seconds 10 --fps 30\n"
               "         lane-seg play drive   (with the node running: lanes at 30 Hz)",
    )
    defaults = DriveConfig()
    p.add_argument("--out", required=True, help="the new bag (a folder; must not exist)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"the drive's random seed (default {DEFAULT_SEED})")
    p.add_argument("--seconds", type=float, default=defaults.seconds, help=f"length (default {defaults.seconds:g})")
    p.add_argument("--fps", type=float, default=defaults.fps, help=f"frames per second (default {defaults.fps:g})")
    p.add_argument("--topic", default=DEFAULT_TOPIC, help=f"image topic (default {DEFAULT_TOPIC}); camera_info beside it")
    p.add_argument("--storage", choices=STORAGES, default="mcap", help="bag storage (default mcap)")
    p.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=_run_drive)


def _run_drive(args: argparse.Namespace) -> int:
    config = drive_config(args.seconds, args.fps)
    info = write_drive_bag(args.out, args.seed, config, topic=args.topic, storage=args.storage,
                           workers=args.workers, progress=args.progress)
    print(f"wrote {args.out}: {info.frames} frames at {info.fps:g} Hz on {info.topic} (+ {info.camera_info_topic}), "
          f"ground truth in {Path(args.out) / LABEL_FILE}")
    return 0
