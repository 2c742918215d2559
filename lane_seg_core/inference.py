"""The per-frame pipeline: RGB images -> network outputs -> lanes. Shared by eval, predict, bags and the node."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint
from .ground import GroundPlane
from .model import SegNet, fast_memory_format
from .postprocess import Lane, PostprocessConfig, extract_lanes, instance_mask
from .preprocess import InputGeometry, Preprocessing, network_batch


class Backend(Protocol):
    """Runs the network: normalised float32 [B,3,h,w] -> lane probability [B,h,w], embedding [B,D,h,w]."""

    device: torch.device

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class TorchBackend:
    """A SegNet in eval mode; float16 autocast on CUDA unless `half` is False."""

    def __init__(self, model: SegNet, half: bool | None = None) -> None:
        self.device = next(model.parameters()).device
        self.memory_format = fast_memory_format(self.device)
        self.model = model.eval().to(memory_format=self.memory_format)
        self.half = self.device.type == "cuda" if half is None else half

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
            out = self.model(batch.contiguous(memory_format=self.memory_format))
        return out.logits.float().softmax(dim=1)[:, 1].contiguous(), out.embedding.float().contiguous()


@dataclass
class NetworkOutputs:
    """Outputs for a batch: lane probability [B,h,w] and embedding [B,D,h,w] at the network input size."""

    lane_prob: torch.Tensor
    embedding: torch.Tensor
    geometries: list[InputGeometry]
    image_sizes: list[tuple[int, int]]  # (width, height) of each source image
    timings: dict[str, float] = field(default_factory=dict)  # ms for the whole batch


@dataclass
class Detection:
    """One image's lanes (left to right), its instance mask and each stage's time.

    `instance_mask` is uint8 [H,W] at the image's size: 0 background, k for the pixels of lane id k.
    `timings` are ms per stage (preprocess, forward, cluster, fit, mask, total); batch-wide stages are
    shared equally among the batch's images.
    """

    lanes: list[Lane]
    image_size: tuple[int, int]  # (width, height)
    instance_mask: np.ndarray
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
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device '{device}' does not exist: this machine has {torch.cuda.device_count()} CUDA devices")
    return resolved


class LaneDetector:
    """The network plus post-processing, with the settings its checkpoint was trained with."""

    def __init__(
        self, backend: Backend, prep: Preprocessing, post: PostprocessConfig, ground_plane: GroundPlane | None = None
    ) -> None:
        self.backend = backend
        self.prep = prep
        self.post = post
        self.ground_plane = ground_plane

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto") -> "LaneDetector":
        """Load weights and settings onto `device` (auto, cpu, cuda, cuda:N); an exported `.onnx` file works too."""
        if Path(path).suffix == ".onnx":
            from .export import OnnxBackend

            backend = OnnxBackend(path, resolve_device(device))
            return cls(backend, backend.preprocessing, backend.postprocess)
        checkpoint: Checkpoint = load_checkpoint(path)
        model = checkpoint.build_model().to(resolve_device(device))
        return cls(TorchBackend(model), checkpoint.preprocessing, checkpoint.postprocess)

    @property
    def model(self) -> SegNet | None:
        """The SegNet (None when an exported model runs)."""
        return getattr(self.backend, "model", None)

    @property
    def device(self) -> torch.device:
        return self.backend.device

    def with_settings(self, **changes) -> "LaneDetector":
        """The same network with some post-processing settings changed (validated, ValueError names the field)."""
        return LaneDetector(self.backend, self.prep, replace(self.post, **changes), self.ground_plane)

    def with_ground_plane(self, ground_plane: GroundPlane | None) -> "LaneDetector":
        """The same network, giving each lane metric points on this ground plane (None: image points only)."""
        return LaneDetector(self.backend, self.prep, self.post, ground_plane)

    def warm_up(self, image_size: tuple[int, int] = (1280, 720), batch_size: int = 1) -> None:
        """Run a blank batch once so that the first real frame's time does not include lazy initialisation."""
        self([np.zeros((image_size[1], image_size[0], 3), np.uint8)] * batch_size)

    @torch.inference_mode()
    def network(self, images: Sequence[np.ndarray]) -> NetworkOutputs:
        """RGB uint8 images [H,W,3] of any sizes -> network outputs at the network input size."""
        start = time.perf_counter()
        sizes = [(image.shape[1], image.shape[0]) for image in images]
        batch = network_batch(images, self.prep, self.device)
        after_pre = time.perf_counter()
        lane_prob, embedding = self.backend(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        end = time.perf_counter()
        return NetworkOutputs(
            lane_prob, embedding, [self.prep.geometry(w, h) for w, h in sizes], sizes,
            {"preprocess": (after_pre - start) * 1e3, "forward": (end - after_pre) * 1e3},
        )

    @torch.inference_mode()
    def lanes(self, outputs: NetworkOutputs) -> list[Detection]:
        """Cluster and fit the lanes of every image in a batch of network outputs."""
        detections = []
        share = 1.0 / len(outputs.image_sizes)
        for i, size in enumerate(outputs.image_sizes):
            extraction = extract_lanes(outputs.lane_prob[i], outputs.embedding[i], outputs.geometries[i], size, self.post)
            start = time.perf_counter()
            mask = instance_mask(extraction.label_map, outputs.geometries[i], size)
            if self.ground_plane is not None:
                for lane in extraction.lanes:
                    metres, valid = self.ground_plane.to_ground(lane.points)
                    lane.ground_points = metres[valid].astype(np.float32)
            timings = {k: v * share for k, v in outputs.timings.items()}
            timings.update(extraction.timings, mask=(time.perf_counter() - start) * 1e3)
            timings["total"] = sum(timings.values())
            detections.append(Detection(extraction.lanes, size, mask, timings))
        return detections

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> Detection | list[Detection]:
        """One RGB uint8 image [H,W,3] -> Detection; a list of images (several cameras) -> a list, run as one batch."""
        single = isinstance(images, np.ndarray) and images.ndim == 3
        batch = [images] if single else list(images)
        if not batch:
            return []
        detections = self.lanes(self.network(batch))
        return detections[0] if single else detections
