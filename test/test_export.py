"""Exported models: ONNX matches torch and runs in the detector; TorchScript matches; both carry their settings."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from lane_seg_core.checkpoint import CheckpointError, load_checkpoint
from lane_seg_core.cli import BUILTIN_CHECKPOINT
from lane_seg_core.evaluate import read_rgb
from lane_seg_core.export import (SETTINGS_KEY, LaneOutputs, OnnxBackend, example_input, export_onnx,
                                  export_torchscript, run_torchscript)
from lane_seg_core.inference import LaneDetector
from lane_seg_core.synth import generate_dataset


@pytest.fixture(scope="module")
def checkpoint():
    return load_checkpoint(BUILTIN_CHECKPOINT)


@pytest.fixture(scope="module")
def onnx_file(checkpoint, tmp_path_factory):
    return export_onnx(checkpoint, tmp_path_factory.mktemp("onnx") / "lanes.onnx")


def torch_outputs(checkpoint, batch):
    with torch.no_grad():
        return LaneOutputs(checkpoint.build_model()).eval()(batch)


def test_onnx_matches_torch_for_batch_sizes_it_was_not_exported_with(checkpoint, onnx_file):
    backend = OnnxBackend(onnx_file)
    for size in (1, 3, 5):
        batch = example_input(checkpoint, batch=size, seed=size)
        for got, expected in zip(backend(batch), torch_outputs(checkpoint, batch)):
            assert got.shape == expected.shape
            assert float((got - expected).abs().max()) <= 1e-3


def test_onnx_file_is_opset_17_or_newer_and_carries_the_settings(checkpoint, onnx_file):
    model = onnx.load(str(onnx_file))
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    settings = json.loads({p.key: p.value for p in model.metadata_props}[SETTINGS_KEY])
    assert settings["preprocessing"] == checkpoint.preprocessing.to_dict() | {"mean": list(checkpoint.preprocessing.mean),
                                                                              "std": list(checkpoint.preprocessing.std)}
    assert settings["postprocess"]["lane_threshold"] == checkpoint.postprocess.lane_threshold
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["lane_prob", "embedding"]


def test_detector_runs_the_onnx_model_and_finds_the_same_lanes(onnx_file, tmp_path):
    generate_dataset(tmp_path, 3, seed=31337, workers=1)
    frames = [read_rgb(p) for p in sorted(tmp_path.glob("clips/**/*.jpg"))]
    exported = LaneDetector.from_checkpoint(onnx_file, device="cpu")
    native = LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cpu")
    assert exported.model is None and exported.post == native.post and exported.prep == native.prep
    for a, b in zip(exported(frames), native(frames)):
        assert len(a.lanes) == len(b.lanes) >= 2
        assert (a.instance_mask != b.instance_mask).mean() < 1e-3
        for x, y in zip(a.lanes, b.lanes):
            assert np.abs(x.points - y.points).max() < 0.5


def test_torchscript_matches_torch_and_carries_the_settings(checkpoint, tmp_path):
    path = export_torchscript(checkpoint, tmp_path / "lanes.pt")
    batch = example_input(checkpoint, batch=3, seed=9)
    for got, expected in zip(run_torchscript(path, batch), torch_outputs(checkpoint, batch)):
        assert torch.equal(got, expected)
    extra = {SETTINGS_KEY: ""}
    torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra[SETTINGS_KEY])["model_config"]["width"] == checkpoint.model_config.width


def test_an_onnx_file_that_is_not_ours_is_refused_by_name(tmp_path):
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(foreign), dynamo=True)
    with pytest.raises(CheckpointError, match=r"foreign.onnx: not a lane_seg export"):
        OnnxBackend(foreign)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match=r"garbage.onnx: not a readable ONNX model"):
        LaneDetector.from_checkpoint(garbage, device="cpu")


def test_opset_below_17_is_refused(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="opset must be >= 17, got 16"):
        export_onnx(checkpoint, tmp_path / "old.onnx", opset=16)


@pytest.mark.parametrize("fmt, name", [("onnx", "m.onnx"), ("torchscript", "m.pt")])
def test_export_command_writes_and_checks_the_file(tmp_path, fmt, name):
    out = tmp_path / name
    result = subprocess.run([sys.executable, "-m", "lane_seg_core.cli", "export", "--format", fmt, "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.stat().st_size > 100_000
    difference = float(result.stdout.split("max |exported - torch| on a test batch: ")[1].split()[0])
    assert difference <= 1e-3
