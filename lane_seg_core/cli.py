"""The `lane-seg` command: synth, train, eval, tune, score, export, predict."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Callable, Sequence

from .builtin import BUILTIN_CHECKPOINT


class DefaultsShown(argparse.HelpFormatter):
    """Help that ends each option with its default, unless the help already says it or there is none to say."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and action.nargs != 0 and action.default not in (None, argparse.SUPPRESS)
                and "default" not in text and "%(default)" not in text):
            shown = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else "%(default)s"
            text += f" (default: {shown})" if text else f"default: {shown}"
        return text


class _Version(argparse.Action):
    """--version: the package version and the git commit of the source (looked up only when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from .version import code_version

        print(f"lane-seg {code_version()}")
        parser.exit()


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """--threads N for a command that runs the network on the CPU (see lane_seg_core.threads)."""
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default 0: half the CPUs; all of them stall when another process "
                        "takes a core)")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic dataset in tuSimple's format")
    p.add_argument("--out", required=True, help="output folder (clips/... and label_data_<name>.json)")
    p.add_argument("--count", type=int, required=True, help="number of frames")
    p.add_argument("--seed", type=int, default=0, help="random seed; frame i depends only on (seed, i)")
    p.add_argument("--name", default="synth", help="label file suffix: label_data_<name>.json")
    p.add_argument("--workers", type=int, default=2, help="processes")
    p.add_argument("--world", choices=("basic", "highway"), default="basic",
                   help="basic: one road, guard rails, a few cars; highway: barriers, verges of dirt and grass, "
                        "the far carriageway, seams and joints, bridges, a hood, dashcam optics and traffic")
    p.add_argument("--layouts", metavar="LABELS",
                   help="tuSimple label lines (a file, or a folder of *.json*): the roads copy where their lanes lie")
    p.add_argument("--camera", type=float, nargs=3, metavar=("FOCAL", "HEIGHT", "HORIZON"),
                   help="one camera instead of many: focal length (px at 1280x720), height above the road (m) and "
                        "the image row of the horizon")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .synth import WORLDS, generate_dataset

    path = generate_dataset(
        args.out, args.count, args.seed, name=args.name, workers=args.workers, progress=True,
        config=replace(WORLDS[args.world], layouts=args.layouts or "", fixed_camera=_camera(args.camera)),
    )
    print(f"wrote {args.count} frames, labels in {path}")
    return 0


def _camera(values: list[float] | None) -> tuple[float, float, float] | None:
    """--camera FOCAL HEIGHT HORIZON, checked."""
    if values is None:
        return None
    focal, height, horizon = values
    for name, value, ok, allowed in (
        ("FOCAL", focal, 300 <= focal <= 3000, "300..3000 px"),
        ("HEIGHT", height, 0.5 <= height <= 5.0, "0.5..5.0 m"),
        ("HORIZON", horizon, 0 <= horizon <= 560, "0..560 (rows of a 720-row image, leaving road below it)"),
    ):
        if not ok:
            raise ValueError(f"--camera {name} must be in {allowed}, got {value}")
    return focal, height, horizon


def _add_train(sub: argparse._SubParsersAction) -> None:
    from .train_config import TrainConfig

    d = TrainConfig(data="", out="")
    p = sub.add_parser("train", help="train SegNet on a tuSimple-format folder")
    p.add_argument("--data", required=True, help="training folder: label_data_*.json and clips/, or CULane *.lines.txt")
    p.add_argument("--val", help="validation folder; picks the lane threshold and best.pt")
    p.add_argument("--out", required=True, help="run folder for last.pt, best.pt and tensorboard/")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training frames")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="frames per step (per process under torchrun)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (warm-up, then cosine decay)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="steps of linear learning-rate warm-up")
    p.add_argument("--img-size", type=int, nargs=2, metavar=("W", "H"), default=list(d.img_size),
                   help="network input size, multiples of 32")
    p.add_argument("--crop-top", type=float, default=d.crop_top, help="fraction of rows cut off the top")
    p.add_argument("--width", type=float, default=d.width, help="channel multiplier (1.0 = the original SegNet)")
    p.add_argument("--pretrained", help="local torchvision vgg16_bn state dict for the encoder (width 1.0)")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="fine-tune a trained model: its weights and its width, input size, crop, loss and "
                        "post-processing settings (which replace these options), with a fresh optimiser")
    p.add_argument("--lane-thickness", type=int, default=d.lane_thickness, help="lane width in input pixels")
    p.add_argument("--delta-var", type=float, default=d.delta_var,
                   help="discriminative loss: pull pixels to within this of their lane's mean (clustering bandwidth = 2x)")
    p.add_argument("--delta-dist", type=float, default=d.delta_dist,
                   help="discriminative loss: push lane means at least 2x this apart")
    p.add_argument("--seg-loss", dest="seg_kind", choices=("weighted_ce", "focal", "ce"), default=d.seg_kind,
                   help="lane/background loss")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="train without random flips, rotations, scaling, shifts and colour changes")
    p.add_argument("--amp", action="store_true", help="mixed precision (float16 on CUDA, bfloat16 on CPU)")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--workers", type=int, default=d.workers, help="data loader processes")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of weights, batch order and augmentation")
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/last.pt")
    p.add_argument("--val-every", type=int, default=d.val_every, help="steps between validations")
    p.add_argument("--val-frames", type=int, default=d.val_frames, help="at most this many validation frames are scored")
    p.add_argument("--log-every", type=int, default=d.log_every,
                   help="steps between loss figures (TensorBoard; a line on stderr with --no-progress)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, Trainer

    fields = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    trainer = Trainer(TrainConfig(**fields))
    metrics = trainer.run()
    # Everything is written: spare the exit the interpreter's last garbage collection over torch's objects,
    # which takes seconds on a busy CPU (a stopped run should end within seconds).
    gc.freeze()
    if trainer.stopped_by is not None:
        return 128 + trainer.stopped_by  # as a shell reports a killed process: 130 for SIGINT, 143 for SIGTERM
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun only rank 0 reports
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    print(f"done: {shown or 'no validation figures (no --val)'}; checkpoints in {args.out}")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="predict a labelled tuSimple folder and score it with the official rules")
    p.add_argument("--data", required=True, help="folder with label_data_*.json, test_label.json or CULane *.lines.txt")
    p.add_argument("--checkpoint", default=str(BUILTIN_CHECKPOINT), help="checkpoint (default: the built-in model)")
    p.add_argument("--out", help="write the predictions here (tuSimple submission format)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=8, help="images per network batch")
    p.add_argument("--lane-threshold", type=float, help="override the checkpoint's lane probability threshold")
    p.add_argument("--ignore-run-time", action="store_true",
                   help="score accuracy alone (the official rule zeroes frames over 200 ms, e.g. on a busy CPU)")
    add_threads_argument(p)
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_folder
    from .inference import LaneDetector
    from .threads import use_cpu_threads

    use_cpu_threads(args.threads)
    detector = LaneDetector.from_checkpoint(args.checkpoint, device=args.device)
    if args.lane_threshold is not None:
        detector = detector.with_settings(lane_threshold=args.lane_threshold)
    score = evaluate_folder(detector, args.data, args.out, args.batch_size, args.ignore_run_time)
    print(f"frames={score.frames} F1={score.f1:.4f}" + (f" predictions={args.out}" if args.out else ""))
    print(score.summary())
    return 0


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="pick the lane-probability threshold on a labelled folder; store it in a copy")
    p.add_argument("--checkpoint", required=True, help="checkpoint to tune")
    p.add_argument("--data", required=True, help="labelled validation folder (not the test set)")
    p.add_argument("--out", required=True, help="where to write the tuned checkpoint")
    p.add_argument("--thresholds", type=float, nargs="+", default=None, help="candidates (default: 0.3 ... 0.95)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_threads_argument(p)
    p.set_defaults(func=_run_tune)


def _run_tune(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .checkpoint import load_checkpoint, save_checkpoint
    from .evaluate import load_ground_truth, sweep_lane_threshold
    from .inference import LaneDetector
    from .threads import use_cpu_threads
    from .train import THRESHOLDS

    use_cpu_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    detector = LaneDetector.from_checkpoint(args.checkpoint, device=args.device)
    sweep = sweep_lane_threshold(detector, args.data, load_ground_truth(args.data), args.thresholds or THRESHOLDS)
    for threshold, score in sweep.scores.items():
        print(f"lane_threshold={threshold:<5} {score.summary()} F1={score.f1:.4f}")
    best = sweep.best_score
    checkpoint.postprocess = replace(checkpoint.postprocess, lane_threshold=sweep.best_threshold)
    checkpoint.metrics.update(val_accuracy=best.accuracy, val_fp=best.fp, val_fn=best.fn, val_f1=best.f1,
                              lane_threshold=sweep.best_threshold, tuned_on=str(args.data))
    save_checkpoint(checkpoint, args.out, with_training_state=False)
    print(f"chose lane_threshold={sweep.best_threshold}; wrote {args.out}")
    return 0


def _add_widen(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("widen", help="widen a trained model without changing its outputs, to fine-tune it wider")
    p.add_argument("--checkpoint", required=True, help="trained checkpoint")
    p.add_argument("--width", type=float, required=True, help="the new SegNet width (at least the checkpoint's)")
    p.add_argument("--out", required=True, help="where to write the wider checkpoint")
    p.add_argument("--seed", type=int, default=0, help="seed of the weight shares between copied channels")
    p.set_defaults(func=_run_widen)


def _run_widen(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint, save_checkpoint
    from .model import ModelConfig, count_parameters
    from .widen import widen_checkpoint

    try:
        ModelConfig(width=args.width)
    except ValueError as exc:
        raise ValueError(f"--width: {exc}") from None
    checkpoint = load_checkpoint(args.checkpoint)
    if args.width < checkpoint.model_config.width:
        raise ValueError(f"--width must be at least the checkpoint's width {checkpoint.model_config.width} "
                         f"({args.checkpoint}), got {args.width}")
    wider = widen_checkpoint(checkpoint, args.width, args.seed)
    save_checkpoint(wider, args.out, with_training_state=False)
    print(f"widened {args.checkpoint} from width {checkpoint.model_config.width} to {args.width} "
          f"({count_parameters(checkpoint.build_model()):,} -> {count_parameters(wider.build_model()):,} "
          f"parameters, the same outputs); wrote {args.out}")
    return 0


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a tuSimple prediction file against ground truth (official rules)")
    p.add_argument("pred", help="predictions, one JSON object per line with raw_file, lanes, run_time")
    p.add_argument("gt", nargs="+", help="ground-truth label file(s)")
    p.set_defaults(func=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from .metrics import evaluate_tusimple

    score = evaluate_tusimple(args.pred, args.gt)
    print(f"frames={score.frames} F1={score.f1:.4f}")
    print(score.summary())
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (onnxruntime, TensorRT) or TorchScript (libtorch)")
    p.add_argument("--checkpoint", default=str(BUILTIN_CHECKPOINT), help="checkpoint (default: the built-in model)")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx",
                   help="onnx: onnxruntime, TensorRT; torchscript: libtorch (C++)")
    p.add_argument("--out", required=True, help="file to write (.onnx or .pt)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset, at least 17")
    add_threads_argument(p)
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .export import export_onnx, export_torchscript, verify_export
    from .threads import use_cpu_threads

    use_cpu_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    if args.format == "onnx":
        path = export_onnx(checkpoint, args.out, args.opset)
    else:
        path = export_torchscript(checkpoint, args.out)
    check = verify_export(checkpoint, path)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {args.format})")
    print(f"check on {check.images} synthetic road frames: {check.describe()}")
    if not check.passed:
        print(f"lane-seg export: error: {path} does not compute what the checkpoint does (see the check above)",
              file=sys.stderr)
        return 1
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="find lanes in an image, a folder of images or a video; draw and save them")
    p.add_argument("input", help="an image, a folder (searched recursively) or a video file")
    p.add_argument("--checkpoint", default=str(BUILTIN_CHECKPOINT), help="checkpoint or .onnx (default: built-in)")
    p.add_argument("--out", required=True, help="folder for overlays and predictions.json (tuSimple lines)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=8, help="images per network batch")
    p.add_argument("--max-frames", type=int, help="stop after this many images or video frames")
    p.add_argument("--lane-threshold", type=float, help="override the checkpoint's lane probability threshold")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_threads_argument(p)
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from .inference import LaneDetector
    from .predict import predict_path
    from .threads import use_cpu_threads

    use_cpu_threads(args.threads)
    detector = LaneDetector.from_checkpoint(args.checkpoint, device=args.device)
    if args.lane_threshold is not None:
        detector = detector.with_settings(lane_threshold=args.lane_threshold)
    summary = predict_path(detector, args.input, args.out, args.batch_size, args.max_frames, args.progress)
    print(summary.describe())
    return 0


CORE_COMMANDS = (_add_synth, _add_train, _add_eval, _add_tune, _add_widen, _add_score, _add_export, _add_predict)


def build_parser(extensions: Sequence[Callable[[argparse._SubParsersAction], None]] = ()) -> argparse.ArgumentParser:
    """The core's subcommands plus `extensions` (lane_seg_ros adds bag and play; the core never imports ROS)."""
    parser = argparse.ArgumentParser(prog="lane-seg", description="Lane instance segmentation (SegNet + discriminative loss).")
    parser.add_argument("--version", action=_Version, help="print the version (and git commit) and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (*CORE_COMMANDS, *extensions):
        add(sub)
    for command in sub.choices.values():
        command.formatter_class = DefaultsShown
    return parser


def main(argv: Sequence[str] | None = None, extensions: Sequence[Callable] = ()) -> int:
    args = build_parser(extensions).parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"lane-seg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lane-seg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
