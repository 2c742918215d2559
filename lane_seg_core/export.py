"""Exported models: ONNX and TorchScript files that carry their settings, and running ONNX in the detector."""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .checkpoint import Checkpoint, CheckpointError
from .model import SegNet
from .postprocess import PostprocessConfig
from .preprocess import Preprocessing, network_batch

SETTINGS_KEY = "lane_seg.json"  # ONNX metadata key and TorchScript extra file holding the settings
INPUT_NAME = "image"
OUTPUT_NAMES = ("lane_prob", "embedding")
# Exported and torch outputs agree to this, relative to each output's largest magnitude in the image (at least 1),
# once both unpool at the same argmaxes: float32 rounding is ~1e-5 of it (1e-6 for the built-in model).
DIFFERENCE_TOLERANCE = 1e-4
# A 2x2 max-pool window is a near-tie when its top two inputs differ by at most this times max(1, |top|):
# onnxruntime's and torch's convolutions round differently by up to ~1e-5, which may pick the other argmax.
TIE_TOLERANCE = 1e-5
VERIFY_FRAMES = 5  # synthetic road frames `lane-seg export` checks with (the export was traced with a batch of 2)


class LaneOutputs(nn.Module):
    """SegNet with the outputs the detector uses: normalised [B,3,h,w] -> lane probability [B,h,w], embedding [B,D,h,w]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(image)
        return out.logits.softmax(dim=1)[:, 1], out.embedding


def settings_of(checkpoint: Checkpoint) -> dict:
    """What an exported file needs besides its graph: preprocessing, post-processing, model and loss settings."""
    return {
        "format": "lane_seg",
        "model_config": checkpoint.model_config.to_dict(),
        "preprocessing": checkpoint.preprocessing.to_dict(),
        "postprocess": checkpoint.postprocess.to_dict(),
        "loss": dict(checkpoint.loss),
        "code_version": checkpoint.code_version,
    }


def example_input(checkpoint: Checkpoint, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A normalised random batch [B,3,h,w] at the checkpoint's input size (what the exports are traced with)."""
    prep = checkpoint.preprocessing
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, checkpoint.model_config.in_channels, prep.input_height, prep.input_width, generator=generator)


def export_onnx(checkpoint: Checkpoint, out: str | os.PathLike, opset: int = 18) -> Path:
    """Write an ONNX model (dynamic batch, opset >= 17) with the settings in its metadata."""
    import onnx

    if opset < 17:
        raise ValueError(f"ONNX opset must be >= 17, got {opset}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = LaneOutputs(checkpoint.build_model()).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    exporter_log = logging.getLogger("onnx_ir")  # warns about empty attribute lists it handles correctly
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper, (example_input(checkpoint),), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                opset_version=opset, dynamo=True, dynamic_shapes=({0: batch},), verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = SETTINGS_KEY, json.dumps(settings_of(checkpoint))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    return out


def export_torchscript(checkpoint: Checkpoint, out: str | os.PathLike) -> Path:
    """Write a traced TorchScript module (for libtorch) with the settings as an extra file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = LaneOutputs(checkpoint.build_model()).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still what libtorch loads
        traced = torch.jit.trace(wrapper, example_input(checkpoint))
        torch.jit.save(traced, str(out), _extra_files={SETTINGS_KEY: json.dumps(settings_of(checkpoint))})
    return out


class OnnxBackend:
    """Runs an exported ONNX model with onnxruntime; its settings come from the file's metadata."""

    def __init__(self, path: str | os.PathLike, device: torch.device = torch.device("cpu")) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeError("running an .onnx model needs onnxruntime: pip install 'lane-seg[export]'") from None
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(f"{path}: device '{device}' needs onnxruntime-gpu; this onnxruntime runs on the CPU only")
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{path}: not a readable ONNX model: {exc}") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(SETTINGS_KEY)
        if raw is None:
            raise CheckpointError(f"{path}: not a lane_seg export (no '{SETTINGS_KEY}' in its metadata)")
        settings = json.loads(raw)
        self.preprocessing = Preprocessing.from_dict(settings["preprocessing"])
        self.postprocess = PostprocessConfig.from_dict(settings["postprocess"])
        self.settings = settings
        self.device = device

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        array = np.ascontiguousarray(batch.detach().float().cpu().numpy())
        lane_prob, embedding = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: array})
        return torch.from_numpy(lane_prob).to(self.device), torch.from_numpy(embedding).to(self.device)


def run_torchscript(path: str | os.PathLike, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run an exported TorchScript file on a normalised batch [B,3,h,w] (CPU)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")
        return module(batch)


def road_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """Synthetic road frames 0..count-1 of dataset `seed`, RGB uint8 [720,1280,3]."""
    import cv2

    from .synth import render_scene, sample_frame

    return [cv2.cvtColor(render_scene(sample_frame(seed, i))[0], cv2.COLOR_BGR2RGB) for i in range(count)]


class Trace(NamedTuple):
    """A run's lane probability [B,h,w] and embedding [B,D,h,w], with its max-pool argmaxes when known.

    `indices` per pooling stage, [B,C,h',w'] flat within each [2h',2w'] plane (torch's convention);
    `pool_inputs` (torch runs only) the pooled features [B,C,2h',2w'].
    """

    lane_prob: torch.Tensor
    embedding: torch.Tensor
    indices: list[torch.Tensor] | None = None
    pool_inputs: list[torch.Tensor] | None = None


@torch.no_grad()
def trace_torch(model: SegNet, batch: torch.Tensor, indices: list[torch.Tensor] | None = None) -> Trace:
    """Run `model` on [B,3,h,w] and record each max pool's input and argmaxes; with `indices` the decoder unpools there."""
    pool_inputs, recorded = [], []

    def keep_input(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        pool_inputs.append(output)

    def swap_indices(module: nn.Module, args: tuple, output: tuple) -> tuple:
        recorded.extend(output[1])
        return output if indices is None else (output[0], list(indices))

    handles = [stage.register_forward_hook(keep_input) for stage in model.encoder.stages]
    handles.append(model.encoder.register_forward_hook(swap_indices))
    try:
        lane_prob, embedding = LaneOutputs(model).eval()(batch)
    finally:
        for handle in handles:
            handle.remove()
    return Trace(lane_prob, embedding, recorded, pool_inputs)


class OnnxTracer:
    """Runs an exported ONNX file with each 2x2 max pool's argmax indices as extra outputs (to compare with torch)."""

    def __init__(self, path: str | os.PathLike) -> None:
        import onnx
        import onnxruntime as ort

        proto = onnx.load(str(path))
        pools = [node for node in proto.graph.node if node.op_type == "MaxPool" and len(node.output) == 2
                 and any(a.name == "kernel_shape" and list(a.ints) == [2, 2] for a in node.attribute)]
        self.index_names = [node.output[1] for node in pools]
        proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in self.index_names)
        self.session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])

    def __call__(self, batch: torch.Tensor) -> Trace:
        """Normalised [B,3,h,w] -> outputs and argmaxes (ONNX's flat [B,C,H,W] indices made per plane, as torch's)."""
        array = np.ascontiguousarray(batch.detach().float().cpu().numpy())
        lane_prob, embedding, *flat = self.session.run([*OUTPUT_NAMES, *self.index_names], {INPUT_NAME: array})
        indices = []
        for index in map(torch.from_numpy, flat):
            b, c, h, w = index.shape
            plane = torch.arange(b * c).view(b, c, 1, 1) * (4 * h * w)  # 2x2 stride-2 pools of even sizes
            indices.append(index - plane)
        return Trace(torch.from_numpy(lane_prob), torch.from_numpy(embedding), indices)


@dataclass(frozen=True)
class ExportCheck:
    """Per image of a batch: how an export's outputs differ from torch's, and whether max-pool near-ties explain it."""

    max_difference: tuple[float, ...]  # largest |exported - torch| of lane probability and embedding
    pixels_beyond: tuple[float, ...]  # fraction of pixels where an output differs by more than DIFFERENCE_TOLERANCE
    tie_flips: tuple[int, ...]  # max-pool windows with another argmax at a near-tie (rounding decided it)
    other_flips: tuple[int, ...]  # max-pool windows with another argmax and no near-tie: a broken export
    same_argmax_difference: tuple[float, ...]  # largest relative difference when torch unpools at the export's argmaxes
    argmaxes_compared: bool = True  # False where the export's argmaxes are unknown (TorchScript)

    @property
    def images(self) -> int:
        """Number of images compared."""
        return len(self.max_difference)

    @property
    def passed(self) -> bool:
        """No argmax differences but near-ties, and with the same argmaxes the outputs agree to DIFFERENCE_TOLERANCE."""
        return not any(self.other_flips) and max(self.same_argmax_difference) <= DIFFERENCE_TOLERANCE

    def describe(self) -> str:
        """One line of figures over the whole batch."""
        text = (f"max |exported - torch| {max(self.max_difference):.2e}, "
                f"pixels beyond {DIFFERENCE_TOLERANCE:.0e} relative {100 * float(np.mean(self.pixels_beyond)):.3f}%")
        if not self.argmaxes_compared:
            return text + " (max-pool argmaxes not compared)"
        return text + (f"; max-pool near-ties broken the other way {sum(self.tie_flips)}, "
                       f"other argmax differences {sum(self.other_flips)}; "
                       f"with the same argmaxes max relative difference {max(self.same_argmax_difference):.2e}")


def _differences(a: Trace, b: Trace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image [B]: largest |a - b|; largest relative to max(1, largest |b|) of each output; pixels beyond tolerance."""
    def relative(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        scale = y.abs().flatten(1).max(1).values.clamp(min=1.0)
        return (x - y).abs() / scale.view(-1, *[1] * (y.dim() - 1))

    prob, embedding = relative(a.lane_prob, b.lane_prob), relative(a.embedding, b.embedding).amax(1)
    largest = torch.maximum((a.lane_prob - b.lane_prob).abs().flatten(1).max(1).values,
                            (a.embedding - b.embedding).abs().flatten(1).max(1).values)
    worst = torch.maximum(prob, embedding).flatten(1)  # [B, h*w]
    return largest, worst.max(1).values, (worst > DIFFERENCE_TOLERANCE).float().mean(1)


def argmax_differences(expected: Trace, exported: Trace) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image [B]: windows whose argmax differs at a near-tie in torch's inputs, and those that differ otherwise."""
    ties = others = torch.zeros(expected.lane_prob.shape[0], dtype=torch.long)
    for inputs, ours, theirs in zip(expected.pool_inputs, expected.indices, exported.indices, strict=True):
        channels, height, width = inputs.shape[1:]
        image, channel, row, col = (ours != theirs).nonzero(as_tuple=True)  # usually few: look at those windows only
        picked, chosen = ours[image, channel, row, col], theirs[image, channel, row, col]
        inside = ((chosen >= 0) & (chosen < height * width)
                  & (chosen // width // 2 == row) & (chosen % width // 2 == col))
        plane = (image * channels + channel) * (height * width)
        top = inputs.flatten()[plane + picked]
        other = inputs.flatten()[plane + chosen.clamp(0, height * width - 1)]
        tie = inside & (top - other <= TIE_TOLERANCE * top.abs().clamp(min=1.0))
        ties = ties + torch.bincount(image[tie], minlength=len(ties))
        others = others + torch.bincount(image[~tie], minlength=len(others))
    return ties, others


def compare_export(model: SegNet, batch: torch.Tensor, exported: Trace, expected: Trace | None = None) -> ExportCheck:
    """Compare an export's run on [B,3,h,w] with the model's (`expected`, traced here if not given), per image."""
    expected = trace_torch(model, batch) if expected is None else expected
    if exported.indices is not None and len(exported.indices) != len(expected.indices):
        raise ValueError(f"the export has {len(exported.indices)} 2x2 max pools with indices, "
                         f"the model {len(expected.indices)}: not a lane_seg SegNet export")
    largest, same, beyond = _differences(exported, expected)
    if exported.indices is None:
        zeros = (0,) * len(largest)
        return ExportCheck(tuple(largest.tolist()), tuple(beyond.tolist()), zeros, zeros, tuple(same.tolist()),
                           argmaxes_compared=False)
    ties, others = argmax_differences(expected, exported)
    flipped = (ties + others) > 0
    if flipped.any():  # torch again, unpooling where the export did, for the images where that differs
        rerun = trace_torch(model, batch[flipped], [index[flipped] for index in exported.indices])
        picked = Trace(exported.lane_prob[flipped], exported.embedding[flipped])
        same[flipped] = _differences(picked, rerun)[1]
    return ExportCheck(tuple(largest.tolist()), tuple(beyond.tolist()), tuple(ties.tolist()), tuple(others.tolist()),
                       tuple(same.tolist()))


def verify_export(checkpoint: Checkpoint, path: str | os.PathLike, frames: int = VERIFY_FRAMES) -> ExportCheck:
    """Compare an exported file with the checkpoint on synthetic road frames (a batch size it was not traced with)."""
    batch = network_batch(road_frames(frames), checkpoint.preprocessing)
    if Path(path).suffix == ".onnx":
        exported = OnnxTracer(path)(batch)
    else:
        exported = Trace(*run_torchscript(path, batch))
    return compare_export(checkpoint.build_model(), batch, exported)
