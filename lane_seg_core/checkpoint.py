"""Checkpoints: everything evaluation and the node need, written atomically, read with weights_only=True."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .files import atomic_path
from .model import ModelConfig, SegNet
from .postprocess import PostprocessConfig
from .preprocess import Preprocessing
from .version import code_version  # noqa: F401  (re-exported: the trainer stamps checkpoints with it)

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_config", "preprocessing", "loss", "postprocess", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


@dataclass
class Checkpoint:
    """The settings and weights of a trained model (plus optional training state)."""

    model_config: ModelConfig
    preprocessing: Preprocessing
    loss: dict[str, Any]  # delta_var, delta_dist, seg_kind, ...
    postprocess: PostprocessConfig
    state_dict: dict[str, torch.Tensor]
    train_args: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    training_state: dict[str, Any] | None = None  # optimizer, scheduler, step, RNG; only for resuming

    def build_model(self) -> SegNet:
        """A SegNet with these weights, in eval mode, on the CPU."""
        model = SegNet.from_config(self.model_config)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def to_dict(self, with_training_state: bool = True) -> dict[str, Any]:
        d = {
            "format_version": FORMAT_VERSION,
            "code_version": self.code_version or code_version(),
            "model_config": self.model_config.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "loss": dict(self.loss),
            "postprocess": self.postprocess.to_dict(),
            "train_args": dict(self.train_args),
            "metrics": dict(self.metrics),
            "state_dict": self.state_dict,
        }
        if with_training_state and self.training_state is not None:
            d["training_state"] = self.training_state
        return d


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike, with_training_state: bool = True) -> Path:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(checkpoint.to_dict(with_training_state), tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint safely (no code runs) and check that it has what inference needs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if _is_torchscript(path):
        raise CheckpointError(
            f"{path}: a TorchScript archive (what `lane-seg export --format torchscript` writes, for libtorch), "
            f"not a lane_seg checkpoint: pass the checkpoint it was exported from (best.pt), or an .onnx export")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, KeyError) as exc:  # KeyError: torch's legacy reader on other bytes
        if not _archive_or_pickle(path):
            raise CheckpointError(
                f"{path}: not a readable checkpoint (neither a torch archive nor a pickle: corrupt?)") from None
        raise CheckpointError(
            f"{path}: refused: it holds {_offending_global(exc)}, which could run code when loaded; a lane_seg "
            f"checkpoint holds only tensors and plain data (was the file saved by another program?)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {_plain(exc)}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a lane_seg checkpoint (a dict), found {type(raw).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: not a lane_seg checkpoint, missing {', '.join(missing)}")
    if raw["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {raw['format_version']} is newer than this lane_seg ({FORMAT_VERSION})"
        )
    try:
        checkpoint = Checkpoint(
            model_config=ModelConfig(**raw["model_config"]),
            preprocessing=Preprocessing.from_dict(raw["preprocessing"]),
            loss=dict(raw["loss"]),
            postprocess=PostprocessConfig.from_dict(raw["postprocess"]),
            state_dict=raw["state_dict"],
            train_args=dict(raw.get("train_args", {})),
            metrics=dict(raw.get("metrics", {})),
            code_version=str(raw.get("code_version", "")),
            training_state=raw.get("training_state"),
        )
        checkpoint.build_model()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: inconsistent checkpoint: {exc}") from None
    return checkpoint


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive: a zip holding the model's code next to its constants."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _offending_global(exc: Exception) -> str:
    """The Python class or function that torch's weights-only unpickler refused, from its message."""
    found = re.search(r"Unsupported global: (?:GLOBAL )?(\S+)", str(exc))
    return f"the Python object {found.group(1)}" if found else "Python objects other than tensors"


def _plain(exc: Exception) -> str:
    """An exception's first line without terminal escapes (torch bolds parts of its messages)."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _archive_or_pickle(path: Path) -> bool:
    """A torch zip archive, or a pickle of protocol 2 or later (it starts with the PROTO opcode 0x80)."""
    with open(path, "rb") as f:
        return zipfile.is_zipfile(f) or f.seek(0) == 0 and f.read(1) == b"\x80"
