"""The per-frame pipeline: RGB images -> network outputs -> lanes. Shared by eval, predict and the node."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint
from .model import SegNet
from .postprocess import Lane, PostprocessConfig, lanes_from_outputs
from .preprocess import InputGeometry, Preprocessing, normalise, resize_for_input


@dataclass
class NetworkOutputs:
    """Outputs for a batch: lane probability [B,H,W] and embedding [B,D,H,W] at the input size."""

    lane_prob: torch.Tensor
    embedding: torch.Tensor
    geometries: list[InputGeometry]
    image_sizes: list[tuple[int, int]]  # (width, height) of each source image
    timings: dict[str, float] = field(default_factory=dict)  # ms for the whole batch


@dataclass
class Detection:
    """The lanes of one image, left to right, and how long each stage took (ms, batch share)."""

    lanes: list[Lane]
    image_size: tuple[int, int]
    timings: dict[str, float]


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without CUDA is an error, not a silent CPU fallback."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got '{device}'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' was asked for but CUDA is not available here (use auto or cpu)")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got '{device}'")
    return resolved


class LaneDetector:
    """SegNet plus post-processing with the settings its checkpoint was trained with."""

    def __init__(self, model: SegNet, prep: Preprocessing, post: PostprocessConfig) -> None:
        self.model = model.eval()
        self.prep = prep
        self.post = post

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto") -> "LaneDetector":
        """Load weights and settings from a checkpoint onto `device` (auto, cpu, cuda, cuda:N)."""
        checkpoint: Checkpoint = load_checkpoint(path)
        model = checkpoint.build_model().to(resolve_device(device))
        return cls(model, checkpoint.preprocessing, checkpoint.postprocess)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def with_settings(self, **changes) -> "LaneDetector":
        """The same model with some post-processing settings changed (validated)."""
        return LaneDetector(self.model, self.prep, replace(self.post, **changes))

    @torch.inference_mode()
    def network(self, images: Sequence[np.ndarray]) -> NetworkOutputs:
        """RGB uint8 images [H,W,3] of any sizes -> network outputs at the input size."""
        start = time.perf_counter()
        resized = np.stack([resize_for_input(image, self.prep) for image in images])
        sizes = [(image.shape[1], image.shape[0]) for image in images]
        batch = normalise(torch.from_numpy(resized).to(self.device), self.prep)
        after_pre = time.perf_counter()
        out = self.model(batch)
        lane_prob = out.logits.float().softmax(dim=1)[:, 1]
        embedding = out.embedding.float()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        end = time.perf_counter()
        return NetworkOutputs(
            lane_prob, embedding, [self.prep.geometry(w, h) for w, h in sizes], sizes,
            {"preprocess": (after_pre - start) * 1e3, "forward": (end - after_pre) * 1e3},
        )

    def lanes(self, outputs: NetworkOutputs) -> list[Detection]:
        """Cluster and fit the lanes of every image in a batch of network outputs."""
        detections = []
        share = 1.0 / len(outputs.image_sizes)
        for i, size in enumerate(outputs.image_sizes):
            start = time.perf_counter()
            lanes = lanes_from_outputs(outputs.lane_prob[i], outputs.embedding[i], outputs.geometries[i], size, self.post)
            timings = {k: v * share for k, v in outputs.timings.items()}
            timings["postprocess"] = (time.perf_counter() - start) * 1e3
            timings["total"] = sum(timings.values())
            detections.append(Detection(lanes, size, timings))
        return detections

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> Detection | list[Detection]:
        """One RGB uint8 image [H,W,3] -> Detection; a list of images -> a list (one batch)."""
        single = isinstance(images, np.ndarray) and images.ndim == 3
        detections = self.lanes(self.network([images] if single else list(images)))
        return detections[0] if single else detections
