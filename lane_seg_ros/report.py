"""What the node answered on a bag: read its recorded outputs, score them against ground truth, time and draw them."""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from lane_seg_core.metrics import TuSimpleScore, score_records
from lane_seg_core.postprocess import Lane
from lane_seg_core.tusimple import LaneRecord, lane_points
from lane_seg_core.visualize import contact_sheet, draw_lanes, tint_lanes

from .bag_io import COMPRESSED_IMAGE, LANE_ARRAY, open_bag, read_messages
from .drive_bag import DriveInfo, frame_key, stamp_ns

TUSIMPLE_TIME_LIMIT_MS = 200.0  # the official rule: a slower frame scores nothing
VIDEO_WIDTH = 960  # px; the overlay video is scaled to this width (a 10 s 720p mp4v video is 40 MB)


@dataclass
class Answer:
    """The node's LaneArray for one camera frame."""

    stamp_ns: int
    lanes: list[Lane]
    processing_ms: float  # the node's receipt-to-publish time
    received_ns: int  # when the recorder got it (system clock)
    image_size: tuple[int, int]  # width, height


@dataclass
class NodeOutput:
    """The node's recorded outputs: answers by camera stamp, their masks (mono8 CDR) and its last diagnostics."""

    answers: dict[int, Answer]
    masks: dict[int, bytes] = field(default_factory=dict)
    diagnostics: dict[str, str] = field(default_factory=dict)

    def stamps(self) -> list[int]:
        return sorted(self.answers)


def read_node_output(bag: str | os.PathLike, namespace: str = "") -> NodeOutput:
    """The node's outputs from a bag recorded with `lane-seg record` (<ns>/lanes, <ns>/lanes/instance_mask, /diagnostics)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from lane_seg.msg import LaneArray
    from rclpy.serialization import deserialize_message

    from .conversions import lane_array_to_lanes

    lanes_topic = f"{namespace.rstrip('/')}/lanes"
    mask_topic = f"{lanes_topic}/instance_mask"
    output = NodeOutput({})
    with open_bag(bag) as reader:
        wanted = [c for c in reader.connections if c.topic in (lanes_topic, mask_topic, "/diagnostics")]
        for conn, received, raw in read_messages(reader, wanted, Path(bag)):
            if conn.topic == lanes_topic and conn.msgtype == LANE_ARRAY:
                msg = deserialize_message(bytes(raw), LaneArray)
                stamp = stamp_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
                output.answers[stamp] = Answer(stamp, lane_array_to_lanes(msg), float(msg.processing_ms), received,
                                               (int(msg.image_width), int(msg.image_height)))
            elif conn.topic == mask_topic:
                from sensor_msgs.msg import Image

                msg = deserialize_message(bytes(raw), Image)
                output.masks[stamp_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)] = bytes(raw)
            elif conn.topic == "/diagnostics":
                for status in deserialize_message(bytes(raw), DiagnosticArray).status:
                    if status.name.endswith(": lane detection"):
                        output.diagnostics = {kv.key: kv.value for kv in status.values}
    return output


@dataclass(frozen=True)
class Figures:
    """Rate, drops and latency of one run of the node over a bag."""

    sent: int  # camera frames played
    answered: int  # LaneArray messages recorded
    dropped: int  # frames the node replaced by a newer one before processing (its own count)
    bad: int  # frames the node could not decode
    input_hz: float
    answered_hz: float
    processing_ms: tuple[float, float, float]  # p50, p95, max of the node's receipt-to-publish time
    over_time_limit: int  # answers slower than tuSimple's 200 ms

    @property
    def lost(self) -> int:
        """Frames neither answered nor counted by the node: lost in transport (best effort) or at start/stop."""
        return max(self.sent - self.answered - self.dropped - self.bad, 0)

    def lines(self) -> list[str]:
        p50, p95, worst = self.processing_ms
        return [
            f"frames:            {self.sent} played at {self.input_hz:.1f} Hz, {self.answered} answered "
            f"({self.answered_hz:.1f} Hz), {self.dropped} replaced by a newer frame before the node took them, "
            f"{self.bad} bad, {self.lost} lost",
            f"node latency:      p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms "
            f"(receipt to LaneArray published; {self.over_time_limit} over tuSimple's 200 ms)",
        ]


def figures(output: NodeOutput, camera_stamps: Sequence[int], rate: float) -> Figures:
    """Figures of a run from its recorded outputs and the stamps of the frames played at `rate`."""
    answers = [output.answers[s] for s in output.stamps()]
    times = np.array([a.processing_ms for a in answers]) if answers else np.array([np.nan])
    received = sorted(a.received_ns for a in answers)
    span_in = (camera_stamps[-1] - camera_stamps[0]) / 1e9 / rate if len(camera_stamps) > 1 else 0.0
    span_out = (received[-1] - received[0]) / 1e9 if len(received) > 1 else 0.0
    return Figures(
        sent=len(camera_stamps),
        answered=len(answers),
        dropped=int(output.diagnostics.get("frames dropped", 0)),
        bad=int(output.diagnostics.get("bad frames", 0)),
        input_hz=(len(camera_stamps) - 1) / span_in if span_in > 0 else 0.0,
        answered_hz=(len(received) - 1) / span_out if span_out > 0 else 0.0,
        processing_ms=(float(np.percentile(times, 50)), float(np.percentile(times, 95)), float(np.max(times))),
        over_time_limit=int(np.sum(times > TUSIMPLE_TIME_LIMIT_MS)),
    )


def predictions(output: NodeOutput, topic: str, truth: Sequence[LaneRecord]) -> list[LaneRecord]:
    """tuSimple prediction lines of the answered frames that have ground truth (x at the truth's rows)."""
    by_key = {frame_key(topic, s): a for s, a in output.answers.items()}
    records = []
    for gt in truth:
        answer = by_key.get(gt.raw_file)
        if answer is not None:
            records.append(LaneRecord.of_lanes(gt.raw_file, gt.h_samples, answer.lanes, answer.image_size[0],
                                               answer.processing_ms))
    return records


def score_answers(preds: Sequence[LaneRecord], truth: Sequence[LaneRecord]) -> TuSimpleScore:
    """The official tuSimple figures of the answered frames (each against its own ground truth)."""
    answered = {p.raw_file for p in preds}
    if not answered:
        raise ValueError("the node answered none of the frames that have ground truth: nothing to score")
    return score_records(preds, [gt for gt in truth if gt.raw_file in answered])


def camera_frames(bag: str | os.PathLike, topic: str) -> Iterator[tuple[int, np.ndarray | None]]:
    """(header stamp ns, RGB uint8 [H,W,3]) of a bag's image topic; (bag time, None) for a frame that cannot be decoded."""
    from .cdr import decode_camera_message
    from .conversions import ImageError

    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        compressed = bool(connections) and connections[0].msgtype == COMPRESSED_IMAGE
        for _, timestamp, raw in read_messages(reader, connections, Path(bag)):
            try:
                header, rgb = decode_camera_message(bytes(raw), compressed)
            except ImageError:
                yield timestamp, None
                continue
            yield stamp_ns(header.stamp.sec, header.stamp.nanosec), rgb


def camera_stamps(bag: str | os.PathLike, topic: str) -> list[int]:
    """The header stamps (ns) of a bag's image topic, in bag order (bad frames by their bag time); no pixels decoded."""
    from .cdr import read_camera_message
    from .conversions import ImageError

    stamps = []
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        compressed = bool(connections) and connections[0].msgtype == COMPRESSED_IMAGE
        for _, timestamp, raw in read_messages(reader, connections, Path(bag)):
            try:
                header = read_camera_message(bytes(raw), compressed).header
                stamps.append(stamp_ns(header.stamp.sec, header.stamp.nanosec))
            except ImageError:
                stamps.append(timestamp)
    return stamps


def recorded_mask(mask_cdr: bytes | None) -> np.ndarray | None:
    """A recorded instance mask (serialised mono8 Image) as uint8 [H,W] lane ids; None when there is none."""
    if mask_cdr is None:
        return None
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    msg = deserialize_message(mask_cdr, Image)
    return np.frombuffer(msg.data, np.uint8, count=msg.step * msg.height).reshape(msg.height, msg.step)[:, : msg.width]


@dataclass
class Pictures:
    video: Path
    contact_sheet: Path
    frames: int


def draw_run(
    bag: str | os.PathLike, topic: str, output: NodeOutput, out_dir: Path, truth: Sequence[LaneRecord] = (),
    fps: float = 30.0, sheet_frames: int = 9,
) -> Pictures:
    """An overlay video of every camera frame with the node's lanes (its latest answer) and a contact sheet.

    A frame the node skipped shows the lanes of its latest earlier answer, marked 'held', as a planner
    would have them; ground-truth points are white dots when `truth` is given.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    video_path, sheet_path = out_dir / "lanes.mp4", out_dir / "contact_sheet.jpg"
    truth_by_key = {gt.raw_file: gt for gt in truth}
    stamps = output.stamps()
    answered = set(stamps)
    step = max(len(stamps) // sheet_frames, 1)
    for_sheet = set(stamps[step // 2 :: step][:sheet_frames])
    tiles = []
    writer = None
    written = 0
    try:
        for stamp, rgb in camera_frames(bag, topic):
            if rgb is None:
                continue
            at = bisect.bisect_right(stamps, stamp) - 1
            latest = output.answers[stamps[at]] if at >= 0 else None
            gt = truth_by_key.get(frame_key(topic, stamp))
            dots = [lane_points(lane, gt.h_samples) for lane in gt.lanes] if gt is not None else []
            mask = recorded_mask(output.masks.get(stamp))
            tinted = (tint_lanes(rgb, mask, output.answers[stamp].lanes)
                      if mask is not None and mask.shape == rgb.shape[:2] and stamp in output.answers else rgb)
            picture = draw_lanes(tinted, latest.lanes if latest else [], dots)
            label = "lanes of this frame" if stamp in answered else ("held: latest answer" if latest else "no answer yet")
            cv2.putText(picture, f"t={(stamp - (stamps[0] if stamps else stamp)) / 1e9:6.2f} s  {label}", (20, 40),
                        cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
            frame = picture
            if picture.shape[1] > VIDEO_WIDTH:
                size = (VIDEO_WIDTH, round(picture.shape[0] * VIDEO_WIDTH / picture.shape[1] / 2) * 2)
                frame = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
            if writer is None:
                writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (frame.shape[1], frame.shape[0]))
                if not writer.isOpened():
                    raise OSError(f"cannot write video {video_path}")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            written += 1
            if stamp in for_sheet:
                tiles.append(picture)
    finally:
        if writer is not None:
            writer.release()
    if tiles:
        cv2.imwrite(str(sheet_path), cv2.cvtColor(contact_sheet(tiles), cv2.COLOR_RGB2BGR))
    return Pictures(video_path, sheet_path, written)


def ground_errors(output: NodeOutput, drive: DriveInfo, distances: Sequence[float] = (8.0, 15.0, 30.0)
                  ) -> dict[float, np.ndarray]:
    """Per distance ahead (m): how far (m) each metric lane point lies from the nearest line the drive painted.

    Only answers whose lanes all have ground points count (the node has the camera's intrinsics by then).
    """
    from lane_seg_core.drive import DriveConfig, drive_scenes

    scenes = drive_scenes(drive.seed, DriveConfig(**drive.config))
    errors: dict[float, list[float]] = {d: [] for d in distances}
    for stamp, answer in output.answers.items():
        if not answer.lanes or any(lane.ground_points is None for lane in answer.lanes):
            continue
        scene = scenes[round((stamp - drive.first_stamp_ns) * drive.fps / 1e9)]
        for ahead in distances:
            painted = [-float(scene.ground_x(line.offset, np.array([ahead]))[0]) for line in scene.lines]  # y left
            for lane in answer.lanes:
                x, y = lane.ground_points[:, 0], lane.ground_points[:, 1]
                if x.min() <= ahead <= x.max():
                    order = np.argsort(x)
                    at = float(np.interp(ahead, x[order], y[order]))
                    errors[ahead].append(min(abs(at - p) for p in painted))
    return {d: np.array(e) for d, e in errors.items()}


def describe_ground_errors(errors: dict[float, np.ndarray]) -> str:
    """'median / p95 error a / b cm at D m, ...' for the distances that have points."""
    parts = [f"{100 * np.median(e):.1f} / {100 * np.percentile(e, 95):.1f} cm at {d:g} m"
             for d, e in errors.items() if len(e)]
    return "median / p95 distance to the painted line: " + ", ".join(parts) if parts else "no metric lane points"
