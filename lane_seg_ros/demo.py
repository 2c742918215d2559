"""`lane-seg demo` (what `make demo` runs): the real node on a drive as on a vehicle, recorded, scored and drawn.

A synthetic drive (or your own bag) is played over DDS by `lane-seg play` into `lane_seg_node` running in its
own process; `lane-seg record` records the node's outputs into a bag; the report scores the node's lanes
against the drive's ground truth with the official tuSimple rules and ends with the tuSimple line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lane_seg_core.builtin import BUILTIN_CHECKPOINT
from lane_seg_core.drive import DEFAULT_SEED, DriveConfig, drive_config

from .bag_io import CAMERA_INFO, COMPRESSED_IMAGE, bag_topics, open_bag, select_image_topic
from .domain import reserve_domain_id, ros_environment
from .drive_bag import LABEL_FILE, DriveInfo, frame_key, is_drive_bag, planned_drive, write_drive_bag

REPO = Path(__file__).resolve().parents[1]
OUTPUT_TOPICS = ("/lanes", "/lanes/instance_mask", "/lanes/markers", "/diagnostics")
DIAGNOSTICS_PERIOD_S = 1.0  # the node's report period: its last report, after the last frame, holds the totals
START_TIMEOUT_S = 180.0  # model loading and warm-up on a slow CPU
SETTLE_S = 2.0  # after the last frame: the node finishes it and reports once more


def step(number: int, total: int, text: str) -> None:
    print(f"\n[{number}/{total}] {text}", flush=True)


@dataclass(frozen=True)
class Source:
    """The bag the node is fed and what is known about it."""

    bag: Path
    topic: str
    compressed: bool
    camera_info_topic: str | None
    labels: Path | None
    drive: DriveInfo | None  # the synthetic drive's facts (camera height and pitch), None for a user's bag


def user_source(bag: Path, topic: str | None, labels: Path | None) -> Source:
    """A user's bag: its image topic (given or the only one), the camera_info beside it when recorded."""
    with open_bag(bag) as reader:
        topics = bag_topics(reader)
        topic = select_image_topic(topics, topic, bag)
    compressed = topics[topic] == COMPRESSED_IMAGE
    base = topic[: -len("/compressed")] if compressed and topic.endswith("/compressed") else topic
    info = base.rsplit("/", 1)[0] + "/camera_info"
    if labels is None and (bag / LABEL_FILE).is_file():
        labels = bag / LABEL_FILE
    if labels is not None:
        check_labels(labels, topic)
    drive = DriveInfo.read(bag) if is_drive_bag(bag) else None
    return Source(bag, topic, compressed, info if topics.get(info) == CAMERA_INFO else None, labels, drive)


def check_labels(labels: Path, topic: str) -> None:
    """Before anything runs: the labels read as tuSimple lines and name frames of `topic` as `frame_key` does."""
    from lane_seg_core.tusimple import read_records

    if not labels.is_file():
        raise FileNotFoundError(f"labels '{labels}' do not exist")
    truth = read_records(labels)  # a malformed line is an error naming the file and the line
    prefix = frame_key(topic, 0)[:-1]
    if not any(record.raw_file.startswith(prefix) for record in truth):
        first = truth[0].raw_file if truth else "(the file has no lines)"
        raise ValueError(f"labels '{labels}': no raw_file names a frame of {topic}; expected "
                         f"'{prefix}<header stamp in ns>', the first is '{first}'")


class Processes:
    """Child processes with their output in log files; on exit, anything still running is stopped."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: Sequence[str]) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "wb") as log:
            process = subprocess.Popen(list(command), env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.running[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def failure(self, name: str, what: str) -> RuntimeError:
        tail = "\n".join(self.log(name).strip().splitlines()[-15:])
        return RuntimeError(f"{what}; the end of {self.log_dir / name}.log:\n{tail}")

    def wait_for_line(self, name: str, text: str, timeout: float, others: Sequence[str] = ()) -> None:
        """Until `text` appears in NAME's log; RuntimeError when it or one of `others` exits first."""
        deadline = time.monotonic() + timeout
        while text not in self.log(name):
            for who in (name, *others):
                if self.running[who].poll() is not None:
                    raise self.failure(who, f"{who} exited with code {self.running[who].returncode}")
            if time.monotonic() > deadline:
                raise self.failure(name, f"{name} did not get ready within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self, name: str, timeout: float = 15.0) -> int:
        """SIGINT (Ctrl-C) and wait; SIGKILL when it does not end in time. The exit code."""
        process = self.running.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def close(self) -> None:
        for name in list(self.running):
            self.stop(name, timeout=5.0)


def node_command(source: Source, checkpoint: Path, threads: int) -> list[str]:
    """lane_seg_node remapped onto the bag's topics; on the synthetic drive with its ground plane."""
    command = [sys.executable, "-m", "lane_seg_ros.node", "--ros-args",
               "-p", f"checkpoint:={checkpoint}", "-p", f"diagnostics_period:={DIAGNOSTICS_PERIOD_S}",
               "-p", f"threads:={threads}"]
    if source.compressed:
        command += ["-p", "use_compressed:=true", "-r", f"image/compressed:={source.topic}"]
    else:
        command += ["-r", f"image:={source.topic}"]
    if source.camera_info_topic:
        command += ["-r", f"camera_info:={source.camera_info_topic}"]
    if source.drive is not None and source.camera_info_topic:  # metric lane points from the known camera mount
        command += ["-p", "ground.enabled:=true", "-p", f"ground.height:={source.drive.camera_height:.4f}",
                    "-p", f"ground.pitch:={source.drive.camera_pitch:.6f}"]
    return command


def run_node_on_bag(source: Source, checkpoint: Path, out: Path, rate: float, threads: int) -> tuple[Path, str]:
    """Node, recorder and player in their own processes on a domain of their own; the recorded bag and play's summary."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    recorded = out / "node_output"
    if recorded.exists():
        shutil.rmtree(recorded)
    lane_seg = [sys.executable, "-m", "lane_seg_ros.cli"]
    with ExitStack() as stack:
        lease = stack.enter_context(reserve_domain_id())
        processes = Processes(dict(os.environ, **ros_environment(lease.domain_id, logs / "ros")), logs)
        stack.callback(processes.close)
        print(f"ROS_DOMAIN_ID {lease.domain_id}, localhost only; logs in {logs}/", flush=True)
        processes.start("node", node_command(source, checkpoint, threads))
        processes.start("record", [*lane_seg, "record", str(recorded), *sum((["--topic", t] for t in OUTPUT_TOPICS), [])])
        started = time.monotonic()
        processes.wait_for_line("record", "lane-seg record: recording", START_TIMEOUT_S, others=("node",))
        print(f"node ready after {time.monotonic() - started:.1f} s (model loaded and warmed up); recorder subscribed",
              flush=True)
        topics = [source.topic] + ([source.camera_info_topic] if source.camera_info_topic else [])
        play = processes.start("play", [*lane_seg, "play", str(source.bag), "--rate", f"{rate:g}",
                                        *sum((["--topic", t] for t in topics), [])])
        print(f"playing {source.bag} ({', '.join(topics)}) at --rate {rate:g} ...", flush=True)
        while play.poll() is None:
            if processes.running["node"].poll() is not None:
                raise processes.failure("node", "the node exited while the bag was playing")
            time.sleep(0.2)
        processes.running.pop("play")
        if play.returncode != 0:
            raise processes.failure("play", f"lane-seg play failed with code {play.returncode}")
        time.sleep(SETTLE_S)
        if processes.stop("record") != 0:
            raise processes.failure("record", "lane-seg record failed")
        processes.stop("node")
        summary = processes.log("play").strip().splitlines()[-1]
    return recorded, summary


def _same_drive(bag: Path, planned: DriveInfo) -> bool:
    """Whether `bag` is a complete drive bag made with the planned settings (then it is reused)."""
    try:
        return is_drive_bag(bag) and DriveInfo.read(bag) == planned
    except ValueError:  # written by another version: made again
        return False


def train_fresh(out: Path) -> Path:
    """Run the built-in model's recipe (every stage) from scratch into OUT/run; the last stage's best checkpoint."""
    env = dict(os.environ, DATA=str(out / "data"), RUN=str(out / "run"), SHIP_TO="", INIT="", BALANCE_INIT="",
               PY=sys.executable)
    subprocess.run(["bash", str(REPO / "training" / "train_builtin.sh")], check=True, env=env)
    return out / "run" / "balance" / "best.pt"


def describe_model(checkpoint: Path) -> str:
    from lane_seg_core.inference import LaneDetector

    detector = LaneDetector.from_checkpoint(checkpoint, device="cpu")
    width = f"SegNet width {detector.model.config.width}, " if detector.model is not None else ""
    return (f"{checkpoint}: {width}input {detector.prep.input_width}x{detector.prep.input_height}, "
            f"lane threshold {detector.post.lane_threshold}, bandwidth {detector.post.bandwidth:g}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lane-seg demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/demo", help="folder for everything the demo writes (default out/demo)")
    p.add_argument("--bag", help="your own rosbag2 instead of the synthetic drive (scored only with labels)")
    p.add_argument("--topic", help="image topic of --bag (default: its only Image or CompressedImage topic)")
    p.add_argument("--labels", help="tuSimple ground truth for --bag, raw_file = '<topic>/<stamp ns>' "
                                    f"(default: the bag's {LABEL_FILE} if present)")
    p.add_argument("--checkpoint", help="checkpoint or .onnx for the node (default: the built-in model)")
    p.add_argument("--train", action="store_true", help="train a fresh model with the built-in recipe first (hours on a CPU)")
    p.add_argument("--rate", type=float, default=1.0, help="play speed: 1 = real time as on a vehicle (default), "
                                                           "0.5 = half speed (a slow CPU then answers more frames)")
    p.add_argument("--seconds", type=float, default=DriveConfig().seconds, help="length of the synthetic drive")
    p.add_argument("--threads", type=int, default=0, help="the node's torch CPU threads (0: half the CPUs)")


def add_demo_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the node on a synthetic drive (or your bag) over DDS: recorded, scored, drawn",
                       description=__doc__)
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not (args.rate > 0):
        raise ValueError(f"--rate must be > 0, got {args.rate}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    total = 5
    began = time.perf_counter()

    step(1, total, "environment: .venv with torch, ROS 2 (rclpy, Fast-DDS) and the lane_seg messages")
    import rclpy  # noqa: F401  (fails here, with its reason, rather than in a child process)
    import torch

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}",
          flush=True)

    if args.bag:
        step(2, total, f"your bag: {args.bag}")
        source = user_source(Path(args.bag), args.topic, Path(args.labels) if args.labels else None)
    else:
        drive = out / "drive"
        config = drive_config(args.seconds)
        if not _same_drive(drive, planned_drive(DEFAULT_SEED, config)):
            step(2, total, f"synthesising a {args.seconds:g} s drive (1280x720, 30 Hz; curves, a lane change, "
                           f"dashed lanes, shadows) into the bag {drive}")
            if drive.exists():
                shutil.rmtree(drive)
            write_drive_bag(drive, DEFAULT_SEED, config)
        else:
            step(2, total, f"the synthetic drive {drive} (already there)")
        source = user_source(drive, None, None)
    print(f"camera topic {source.topic}" + (f", {source.camera_info_topic}" if source.camera_info_topic else "")
          + (f"; ground truth {source.labels}" if source.labels else "; no ground truth: not scored"), flush=True)

    if args.train:
        step(3, total, "training a fresh model with the built-in recipe (hours on 2 CPU cores, minutes on a GPU)")
        checkpoint = train_fresh(out)
    else:
        checkpoint = Path(args.checkpoint) if args.checkpoint else BUILTIN_CHECKPOINT
        step(3, total, "the model" + ("" if args.checkpoint else " (built in, trained on synthetic frames)"))
    print(describe_model(checkpoint), flush=True)

    step(4, total, "lane_seg_node in its own process, fed by `lane-seg play` over DDS, recorded by `lane-seg record`")
    try:
        recorded, play_summary = run_node_on_bag(source, checkpoint, out, args.rate, args.threads)
    except RuntimeError as exc:  # a child process failed: its log's end says why
        print(f"lane-seg demo: error: {exc}", file=sys.stderr)
        return 1
    print(f"play: {play_summary}", flush=True)

    step(5, total, "report")
    return report(source, recorded, out, args.rate, began)


def report(source: Source, recorded: Path, out: Path, rate: float, began: float) -> int:
    """Print the figures and the paths; the last line is the tuSimple line when the bag has ground truth."""
    from lane_seg_core.tusimple import read_records, write_records

    from . import report as rep

    output = rep.read_node_output(recorded)
    stamps = rep.camera_stamps(source.bag, source.topic)
    run_figures = rep.figures(output, stamps, rate)
    truth = read_records(source.labels) if source.labels else []
    pictures = rep.draw_run(source.bag, source.topic, output, out, truth, fps=max(run_figures.input_hz, 1.0) / rate)
    for line in run_figures.lines():
        print(line)
    ground = sum(1 for a in output.answers.values() for lane in a.lanes if lane.ground_points is not None)
    lanes = sum(len(a.lanes) for a in output.answers.values())
    print(f"lanes:             {lanes} in {len(output.answers)} answers ({lanes / max(len(output.answers), 1):.2f} "
          f"per frame), {ground} with metric points on the road")
    if source.drive is not None and ground:
        print(f"metric lanes:      {rep.describe_ground_errors(rep.ground_errors(output, source.drive))}")
    if output.diagnostics:
        d = output.diagnostics
        print(f"node:              device {d.get('device')}, model {d.get('model')}, {d.get('frames processed')} frames "
              f"processed")
    print(f"camera bag:        {source.bag}")
    print(f"node's output bag: {recorded} (lanes, instance masks, markers, diagnostics at the camera stamps)")
    print(f"overlay video:     {pictures.video} ({pictures.frames} frames)")
    print(f"contact sheet:     {pictures.contact_sheet}")
    print(f"logs:              {out / 'logs'}/")
    if not truth:
        print(f"demo took {time.perf_counter() - began:.0f} s")
        print("no ground truth for this bag: lanes not scored (give --labels, tuSimple lines keyed '<topic>/<stamp ns>')")
        return 0
    preds = rep.predictions(output, source.topic, truth)
    path = write_records(out / "predictions.json", preds)
    score = rep.score_answers(preds, truth)
    print(f"ground truth:      {source.labels} ({len(truth)} frames)")
    print(f"predictions:       {path} (the node's lanes of the {len(preds)} answered frames, tuSimple format)")
    print(f"F1:                {score.f1:.4f} over the {score.frames} answered frames (precision 1 - FP, recall 1 - FN; "
          "FP and FN by the official rules, 200 ms included)")
    print(f"demo took {time.perf_counter() - began:.0f} s")
    print(score.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
