"""Training: SegNet on tuSimple-format data with segmentation + discriminative loss, resumable, DDP-ready."""

from __future__ import annotations

import math
import os
import signal
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    code_version,
    load_checkpoint,
    save_checkpoint,
)
from .dataset import Augmentation, TuSimpleDataset
from .evaluate import (
    Interrupted,
    load_ground_truth,
    pick_threshold,
    read_rgb,
    selection_metric,
    threshold_predictions,
)
from .inference import LaneDetector, TorchBackend, resolve_device
from .loss import LaneSegLoss
from .model import SegNet, fast_memory_format, load_vgg16_bn_encoder
from .postprocess import PostprocessConfig
from .train_config import TrainConfig
from .tusimple import lane_points
from .visualize import contact_sheet, draw_lanes

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


class Distributed:
    """Rank and world size under torchrun (WORLD_SIZE set), single-process otherwise."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def max(self, values: Sequence[int], device: torch.device) -> list[int]:
        """Element-wise maximum of `values` over all ranks (one all-reduce; the values themselves alone)."""
        if self.world == 1:
            return list(values)
        reduced = torch.tensor(values, dtype=torch.int64, device=device)
        dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
        return reduced.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (picklable objects; [obj] alone)."""
        if self.world == 1:
            return [obj]
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (batch-norm statistics), which each rank's last forward changed."""
        if self.world > 1:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


def warmup_cosine(warmup: int, total: int, floor: float = 0.02):
    """LR multiplier: linear warm-up, then cosine decay to `floor` at `total` steps."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> list[list[int]]:
    """This rank's batches of one epoch: a permutation that depends only on (seed, epoch).

    Every rank gets the same number of full batches (DDP would hang on an extra one).
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()[rank::world]
    steps = n // (batch_size * world)
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]


class Trainer:
    """Owns model, optimiser, schedule and data; `run()` trains until epochs or max_steps are done."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        device = resolve_device(cfg.device)
        self.dist = Distributed(device)
        if device.type == "cuda" and self.dist.world > 1:
            device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        start = _take_settings_from(cfg) if cfg.init else None  # --resume then replaces its weights
        self.prep = start.preprocessing if start else cfg.preprocessing()
        torch.manual_seed(cfg.seed)
        self.memory_format = fast_memory_format(device)
        self.model = (start.build_model().train() if start else SegNet(width=cfg.width)).to(device)
        if cfg.pretrained:
            load_vgg16_bn_encoder(self.model, _load_state_dict(cfg.pretrained))
        self.model.to(memory_format=self.memory_format)
        self.ddp_model = (
            torch.nn.parallel.DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
            if self.dist.world > 1 else self.model
        )
        self.criterion = LaneSegLoss(delta_var=cfg.delta_var, delta_dist=cfg.delta_dist, seg_kind=cfg.seg_kind)
        self.train_set = TuSimpleDataset(
            cfg.data, self.prep, cfg.lane_thickness, Augmentation() if cfg.augment else None, seed=cfg.seed
        )
        self.steps_per_epoch = len(self.train_set) // (cfg.batch_size * self.dist.world)
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"--batch-size {cfg.batch_size} x {self.dist.world} process(es) is larger than the "
                f"{len(self.train_set)} training frames in {cfg.data}"
            )
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(min(cfg.warmup_steps, self.total_steps // 5 + 1), self.total_steps)
        )
        self.use_amp = cfg.amp
        self.amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
        self.step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.best_metric = -math.inf
        self.post = start.postprocess if start else PostprocessConfig(bandwidth=2 * cfg.delta_var)
        self.metrics: dict[str, Any] = {}
        self.val_records = load_ground_truth(cfg.val)[: cfg.val_frames] if cfg.val else []
        self.writer = None
        self.progress: Any = _NoProgress()
        self._signal = 0  # the first SIGINT/SIGTERM this process received
        self.stopped_by: signal.Signals | None = None  # the signal that stopped the run, on whichever rank
        if cfg.resume:
            self._resume(self.out / "last.pt")

    # -- checkpoints -----------------------------------------------------------------------------
    def _checkpoint(self) -> Checkpoint:
        training_state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "best_metric": self.best_metric,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        train_args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.cfg).items()}
        return Checkpoint(
            model_config=self.model.config,
            preprocessing=self.prep,
            loss={"delta_var": self.cfg.delta_var, "delta_dist": self.cfg.delta_dist, "seg_kind": self.cfg.seg_kind,
                  "lane_thickness": self.cfg.lane_thickness},
            postprocess=self.post,
            state_dict={k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()},
            train_args=train_args,
            metrics=dict(self.metrics, step=self.step, epoch=self.epoch),
            code_version=code_version(),
            training_state=training_state,
        )

    def _resume(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint to resume at {path}")
        ckpt = load_checkpoint(path)
        if ckpt.training_state is None:
            raise CheckpointError(f"{path}: holds no training state (optimizer, schedule) to resume from")
        if ckpt.model_config != self.model.config or ckpt.preprocessing != self.prep:
            raise CheckpointError(
                f"{path}: was trained with {ckpt.model_config} / {ckpt.preprocessing}, "
                f"which differs from this command's --width / --img-size / --crop-top"
            )
        state = ckpt.training_state
        self.model.load_state_dict(ckpt.state_dict)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
        self.best_metric = state["best_metric"]
        self.post = ckpt.postprocess
        self.metrics = {k: v for k, v in ckpt.metrics.items() if k not in ("step", "epoch")}
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def save(self, name: str, with_training_state: bool = True) -> Path | None:
        if not self.dist.main:
            return None
        return save_checkpoint(self._checkpoint(), self.out / name, with_training_state)

    # -- training ----------------------------------------------------------------------------------
    def _loader(self, epoch: int) -> Iterator:
        self.train_set.set_epoch(epoch)
        batches = epoch_batches(len(self.train_set), self.cfg.batch_size, self.cfg.seed, epoch, self.dist.rank, self.dist.world)
        batches = batches[self.step_in_epoch :]  # exact continuation after --resume
        return iter(DataLoader(
            self.train_set, batch_sampler=batches, num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False, worker_init_fn=_ignore_stop_signals,
        ))

    def train_step(self, batch) -> dict[str, float] | None:
        """One optimiser step on (images [B,3,H,W], lane mask [B,H,W], instance ids [B,H,W]) -> the loss terms.

        None when a stop was agreed before backward: the step is abandoned, the weights are unchanged.
        Raises FloatingPointError before the weights change when a loss term or a gradient is not finite.
        Either way the batch-norm statistics that the forward pass changed are put back: the model (and the
        last.pt written after an abandoned step) is exactly that of the last completed step.
        """
        images, binary, instances = (t.to(self.device, non_blocking=True) for t in batch)
        images = images.contiguous(memory_format=self.memory_format)
        statistics = [b.detach().clone() for b in self.model.buffers()]
        self.ddp_model.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            out = self.ddp_model(images)
            terms = self.criterion(out.logits, out.embedding, binary, instances)
        try:
            figures = self._finite_terms(terms)
        except FloatingPointError:
            self._put_back(statistics)
            raise
        if self.stopped_by is not None:
            self._put_back(statistics)
            return None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms.loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=10.0)
        # With float16 on CUDA the scaler itself skips a step whose gradients overflowed and lowers its scale.
        if not self.scaler.is_enabled() and not torch.isfinite(grad_norm):
            self._put_back(statistics)
            raise FloatingPointError(
                f"step {self.step + 1}: the gradients became non-finite (norm {grad_norm.item()}) although the loss "
                f"({figures['loss']:.4g}) is finite; the weights were not updated, they are still those of step "
                f"{self.step}; lower --lr or disable --amp"
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return figures

    @torch.no_grad()
    def _put_back(self, statistics: list[torch.Tensor]) -> None:
        """Restore the buffers (batch-norm statistics) saved before a forward pass whose step did not happen."""
        for buffer, saved in zip(self.model.buffers(), statistics):
            buffer.copy_(saved)

    def _finite_terms(self, terms) -> dict[str, float]:
        """The loss terms as floats, agreeing on stops too (see _agree).

        FloatingPointError naming them if any is not finite on any rank.
        """
        values = torch.stack([t.detach().float() for t in terms]).tolist()
        bad = [f"{name}={value}" for name, value in zip(terms._fields, values) if not math.isfinite(value)]
        # Every rank must agree before backward, or the others would wait in its all-reduce for ever.
        if self._agree(len(bad))[0]:
            where = ", ".join(bad) if bad else "on another process"
            raise FloatingPointError(
                f"step {self.step + 1}: loss term(s) not finite ({where}); the weights were not updated, they are "
                f"still those of step {self.step}; lower --lr or disable --amp"
            )
        return dict(zip(terms._fields, values))

    def _agree(self, *flags: int) -> list[int]:
        """Maximum of `flags` over all ranks, in one all-reduce with the stop signal: sets stopped_by if any rank
        got a signal. Every rank must call it at the same points, in the same order."""
        signum, *flags = self.dist.max([self._signal, *flags], self.device)
        if signum:
            self.stopped_by = signal.Signals(signum)
        return flags

    def _stopped(self, busy: bool = False) -> bool:
        """Whether any rank got a signal; under DDP every rank must ask at the same point (`busy`: validating)."""
        self._agree(int(busy))
        return self.stopped_by is not None

    def validate(self) -> dict[str, float] | None:
        """Pick the lane threshold on the validation frames; their tuSimple figures, None if a stop cut it short.

        Under DDP each rank predicts every world-th frame, asking the others about stops before every batch
        (so a stop seen by one rank abandons validation on all at once); the predictions are then gathered
        and every rank picks the same threshold.
        """
        self.dist.broadcast_buffers(self.model)  # validate the weights that last.pt (rank 0's) will hold
        detector = LaneDetector(TorchBackend(self.model.eval()), self.prep, self.post)
        share = self.val_records[self.dist.rank :: self.dist.world]
        try:
            mine = threshold_predictions(detector, self.cfg.val, share, THRESHOLDS, self.cfg.batch_size,
                                         stop=lambda: self._stopped(busy=True))
        except Interrupted:
            return None
        if not self._others_finish():
            return None
        shares = self.dist.gather(mine)
        sweep = pick_threshold({t: [p for part in shares for p in part[t]] for t in THRESHOLDS}, self.val_records)
        self.post = replace(self.post, lane_threshold=sweep.best_threshold)
        score = sweep.best_score
        return {"val_accuracy": score.accuracy, "val_fp": score.fp, "val_fn": score.fn, "val_f1": score.f1,
                "lane_threshold": sweep.best_threshold}

    def _others_finish(self) -> bool:
        """Keep agreeing on stops until no rank is busy with its share: False if a stop came first."""
        while True:
            if not self._agree(0)[0]:
                return True
            if self.stopped_by is not None:
                return False

    def _sample_pictures(self, count: int = 4):
        """Lanes found on the first validation frames, over their ground truth: RGB [H,W,3]."""
        detector = LaneDetector(TorchBackend(self.model.eval()), self.prep, self.post)
        pictures = []
        for record in self.val_records[:count]:
            image = read_rgb(Path(self.cfg.val) / record.raw_file)
            truth = [lane_points(lane, record.h_samples) for lane in record.lanes]
            pictures.append(draw_lanes(image, detector(image).lanes, truth))
        return contact_sheet(pictures, columns=2)

    def _after_validation(self, figures: dict[str, float]) -> None:
        self.metrics.update(figures)
        if self.writer:
            for k, v in figures.items():
                self.writer.add_scalar(f"val/{k}", v, self.step)
            self.writer.add_image("val/lanes", self._sample_pictures(), self.step, dataformats="HWC")
        metric = selection_metric(figures["val_accuracy"], figures["val_fp"], figures["val_fn"])
        if metric > self.best_metric:
            self.best_metric = metric
            self.save("best.pt", with_training_state=False)

    def run(self, max_new_steps: int | None = None) -> dict[str, Any]:
        """Train to the end, or for `max_new_steps`, or until SIGINT/SIGTERM; writes last.pt and best.pt.

        A signal stops the run before the next batch; one during a step abandons it before its backward pass,
        one during a validation abandons that. last.pt then holds the last completed step and `stopped_by` the
        signal; a second signal raises KeyboardInterrupt at once, leaving the last.pt written before. Under DDP
        every rank stops at the same step.
        Stopping early keeps the planned schedule, so `--resume` continues exactly where it stopped.
        """
        stop_at = self.total_steps if max_new_steps is None else min(self.total_steps, self.step + max_new_steps)
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tensorboard"))
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.progress = _progress(self.cfg.progress and self.dist.main, self.total_steps, self.step)
        try:
            self._train(stop_at)
            if self.stopped_by is None and self.val_records and self.step == self.total_steps \
                    and self.step % self.cfg.val_every:
                self._validate_and_record()
            self.dist.broadcast_buffers(self.model)  # every rank ends with the model that last.pt holds
            path = self.save("last.pt")
            if self.dist.main and not (self.out / "best.pt").exists():
                self.save("best.pt", with_training_state=False)
            if self.stopped_by is not None:
                self._say(f"{self.stopped_by.name}: stopped after step {self.step}; {path} holds it "
                          "(continue with --resume)")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.progress.close()
            if self.writer:
                self.writer.close()
            self.dist.close()
        return self.metrics

    def _train(self, stop_at: int) -> None:
        """Optimiser steps until `stop_at` or a stop agreed by every rank, asked before each batch is fetched."""
        while self.step < stop_at:
            batches = self._loader(self.epoch)
            try:
                for _ in range(self.steps_per_epoch - self.step_in_epoch):
                    if self.step >= stop_at or self._stopped():
                        return
                    figures = self.train_step(next(batches))
                    if figures is None:
                        return
                    self.step += 1
                    self.step_in_epoch += 1
                    self.progress.update(1)
                    self._log(figures)
                    if self.val_records and self.step % self.cfg.val_every == 0:
                        if not self._validate_and_record():
                            return
                        self.save("last.pt")
            finally:
                del batches  # shuts the loader's worker processes down now, also on an exception
            self.epoch += 1
            self.step_in_epoch = 0
            self.save("last.pt")

    def _validate_and_record(self) -> bool:
        """Validate, record the figures and best.pt; False when a stop abandoned the validation."""
        self._say(f"validating at step {self.step} on {len(self.val_records)} frames")
        figures = self.validate()
        if figures is None:
            self._say(f"{self.stopped_by.name}: validation at step {self.step} abandoned")
            return False
        self._after_validation(figures)
        self._say(f"step {self.step}: " + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()))
        return True

    def _log(self, figures: dict[str, float]) -> None:
        """Loss terms to TensorBoard and the progress bar (or a line, without one) every --log-every steps."""
        if self.step % self.cfg.log_every or not self.dist.main:
            return
        shown = {k: f"{figures[k]:.3f}" for k in ("loss", "seg", "var", "dist")}
        if self.cfg.progress:
            self.progress.set_postfix(**shown)
        else:
            self._say(f"step {self.step}/{self.total_steps} " + " ".join(f"{k}={v}" for k, v in shown.items()))
        for k, v in figures.items():
            self.writer.add_scalar(f"train/{k}", v, self.step)
        self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)

    def _say(self, message: str) -> None:
        """A line on stderr from rank 0 (above the progress bar, if there is one)."""
        if self.dist.main:
            self.progress.write(message, file=sys.stderr)

    def _request_stop(self, signum: int, _frame: Any) -> None:
        if self._signal:
            raise KeyboardInterrupt  # a second signal: leave at once; the last last.pt stays as it was
        # The run stops before the next batch, abandoning a step whose backward has not begun or a validation
        # under way, and writes last.pt.
        self._signal = signum


def _ignore_stop_signals(_worker_id: int) -> None:
    """Data-loader workers leave SIGINT/SIGTERM to the trainer, which stops them (Ctrl-C reaches the whole group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _take_settings_from(cfg: TrainConfig) -> Checkpoint:
    """Load the --init checkpoint and copy its model, input and loss settings into cfg (saying what changed)."""
    path = Path(cfg.init)
    if not path.is_file():
        raise FileNotFoundError(f"--init: checkpoint not found: {path}")
    ckpt = load_checkpoint(path)
    loss = ckpt.loss
    taken = {
        "width": ckpt.model_config.width,
        "img_size": (ckpt.preprocessing.input_width, ckpt.preprocessing.input_height),
        "crop_top": ckpt.preprocessing.crop_top,
        "delta_var": loss.get("delta_var", cfg.delta_var),
        "delta_dist": loss.get("delta_dist", cfg.delta_dist),
        "seg_kind": loss.get("seg_kind", cfg.seg_kind),
        "lane_thickness": loss.get("lane_thickness", cfg.lane_thickness),
    }
    changed = [f"--{k.replace('_', '-')} {getattr(cfg, k)} -> {v}" for k, v in taken.items() if getattr(cfg, k) != v]
    if changed:
        print(f"--init {path}: settings taken from the checkpoint: {', '.join(changed)}", file=sys.stderr)
    for key, value in taken.items():
        setattr(cfg, key, value)
    return ckpt


def _load_state_dict(path: str) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"--pretrained: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise CheckpointError(f"--pretrained {path}: cannot be loaded safely: {exc}") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


class _NoProgress:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def close(self) -> None: ...

    def write(self, message: str, file: Any = None) -> None:
        print(message, file=file, flush=True)


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
