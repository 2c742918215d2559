"""Exported models: ONNX and TorchScript files that carry their settings, and running ONNX in the detector."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import Checkpoint, CheckpointError
from .postprocess import PostprocessConfig
from .preprocess import Preprocessing

SETTINGS_KEY = "lane_seg.json"  # ONNX metadata key and TorchScript extra file holding the settings
INPUT_NAME = "image"
OUTPUT_NAMES = ("lane_prob", "embedding")


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
    """A normalised random batch [B,3,h,w] at the checkpoint's input size."""
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


def verify_export(checkpoint: Checkpoint, path: str | os.PathLike) -> float:
    """Largest absolute difference between an exported file's outputs and the checkpoint's, on a test batch of 3."""
    batch = example_input(checkpoint, batch=3, seed=1)  # a batch size the export was not traced with
    with torch.no_grad():
        expected = LaneOutputs(checkpoint.build_model()).eval()(batch)
    if Path(path).suffix == ".onnx":
        got = OnnxBackend(path)(batch)
    else:
        got = run_torchscript(path, batch)
    return max(float((a - b).abs().max()) for a, b in zip(got, expected))
