"""Exported models: ONNX matches torch on road frames, also in the detector; TorchScript matches; both carry settings.

onnxruntime's convolutions round differently from torch's (by ~1e-5), so in a 2x2 max-pool window whose top two
inputs are that close it may pick the other argmax, and unpooling then puts the value one pixel away: the outputs
differ by up to ~0.5 around it. The checks allow exactly that, verified: every argmax difference must be such a
near-tie in torch's inputs, and torch unpooling at the export's argmaxes must then agree to 1e-4 everywhere
(relative to each output's largest magnitude, at least 1).
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from lane_seg_core.checkpoint import CheckpointError, load_checkpoint
from lane_seg_core.cli import BUILTIN_CHECKPOINT
from lane_seg_core.evaluate import read_rgb
from lane_seg_core.export import (DIFFERENCE_TOLERANCE, SETTINGS_KEY, OnnxBackend, OnnxTracer, Trace,
                                  argmax_differences, compare_export, export_onnx, export_torchscript, road_frames,
                                  run_torchscript, trace_torch)
from lane_seg_core.inference import LaneDetector, NetworkOutputs
from lane_seg_core.preprocess import network_batch
from lane_seg_core.synth import generate_dataset

import processes

SYNTHETIC_BATCHES = (1, 3, 5, 8)  # batch sizes of distinct synthetic frames; the export was traced with 2
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"  # absent in a fresh clone
REAL_FRAMES = ("tusimple-0601-val/clips/**/*.jpg", "unlabelled/culane/*.jpg", "unlabelled/udacity_lanelines_p1/*.jpg")
REAL_BATCH = 8
BATCHES = (*(f"synthetic-{size}" for size in SYNTHETIC_BATCHES), f"real-{REAL_BATCH}")


@pytest.fixture(scope="module")
def checkpoint():
    return load_checkpoint(BUILTIN_CHECKPOINT)


@pytest.fixture(scope="module")
def model(checkpoint):
    return checkpoint.build_model()


@pytest.fixture(scope="module")
def onnx_file(checkpoint, tmp_path_factory):
    return export_onnx(checkpoint, tmp_path_factory.mktemp("onnx") / "lanes.onnx")


def real_frames() -> list[np.ndarray]:
    """The first REAL_BATCH real road frames (tuSimple, then other cameras and sizes), RGB."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"no real frames at {REAL_DATA}")
    paths = [path for pattern in REAL_FRAMES for path in sorted(REAL_DATA.glob(pattern))][:REAL_BATCH]
    assert len(paths) == REAL_BATCH, f"expected {REAL_BATCH} frames under {REAL_DATA}, found {len(paths)}"
    return [read_rgb(path) for path in paths]


@pytest.fixture(scope="module")
def road_run(checkpoint, model, onnx_file):
    """name -> (frames, batch, torch trace, ONNX trace), each computed once."""
    synthetic = road_frames(sum(SYNTHETIC_BATCHES), seed=3)
    starts = dict(zip(SYNTHETIC_BATCHES, np.cumsum((0, *SYNTHETIC_BATCHES))))
    tracer, runs = OnnxTracer(onnx_file), {}

    def run(name: str) -> tuple[list[np.ndarray], torch.Tensor, Trace, Trace]:
        if name not in runs:
            kind, size = name.split("-")
            frames = real_frames() if kind == "real" else synthetic[starts[int(size)]:starts[int(size)] + int(size)]
            batch = network_batch(frames, checkpoint.preprocessing)
            runs[name] = frames, batch, trace_torch(model, batch), tracer(batch)
        return runs[name]

    return run


@pytest.mark.parametrize("name", BATCHES)
def test_onnx_differs_from_torch_only_where_a_max_pool_near_tie_went_the_other_way(model, onnx_file, road_run, name):
    frames, batch, expected, exported = road_run(name)
    assert all(torch.equal(a, b) for a, b in zip(OnnxBackend(onnx_file)(batch), exported[:2]))  # what the detector runs
    assert exported.lane_prob.shape == expected.lane_prob.shape == (len(frames), *batch.shape[-2:])
    assert exported.embedding.shape == expected.embedding.shape
    check = compare_export(model, batch, exported, expected)
    for i in range(len(frames)):
        assert check.other_flips[i] == 0, f"image {i}: {check.describe()}"
        assert check.same_argmax_difference[i] <= DIFFERENCE_TOLERANCE, f"image {i}: {check.describe()}"
    assert check.passed


def assert_same_lanes(a, b) -> None:
    """Two detections of one image: the same lanes, within 2 px (tuSimple counts a point right within 20 px)."""
    assert [(x.id, x.position) for x in a.lanes] == [(y.id, y.position) for y in b.lanes]
    for x, y in zip(a.lanes, b.lanes):
        assert np.array_equal(x.points[:, 1], y.points[:, 1])
        assert np.abs(x.points[:, 0] - y.points[:, 0]).max() < 2.0
    assert (a.instance_mask != b.instance_mask).mean() < 1e-3


@pytest.mark.parametrize("name", BATCHES)
def test_onnx_outputs_give_the_detector_the_same_lanes_as_torch(checkpoint, onnx_file, road_run, name):
    frames, _, expected, exported = road_run(name)
    sizes = [(frame.shape[1], frame.shape[0]) for frame in frames]
    geometries = [checkpoint.preprocessing.geometry(w, h) for w, h in sizes]
    onnx_detector = LaneDetector.from_checkpoint(onnx_file, device="cpu")
    torch_detector = LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cpu")
    ours = onnx_detector.lanes(NetworkOutputs(exported.lane_prob, exported.embedding, geometries, sizes))
    theirs = torch_detector.lanes(NetworkOutputs(expected.lane_prob, expected.embedding, geometries, sizes))
    assert all(d.lanes for d in theirs)  # lanes to compare, not empty images
    for a, b in zip(ours, theirs):
        assert_same_lanes(a, b)


def test_the_check_fails_when_two_images_of_the_batch_are_swapped(model, road_run):
    _, batch, expected, exported = road_run("synthetic-5")
    order = [0, 3, 2, 1, 4]
    swapped = Trace(exported.lane_prob[order], exported.embedding[order], [i[order] for i in exported.indices])
    check = compare_export(model, batch, swapped, expected)
    assert not check.passed
    assert [n > 0 for n in check.other_flips] == [False, True, False, True, False]
    assert max(check.same_argmax_difference[1], check.same_argmax_difference[3]) > 1.0


@pytest.mark.parametrize("weight", ["model.encoder.stages.0.0.conv.weight", "model.embedding_head.weight"])
def test_the_check_fails_when_one_weight_of_the_export_is_1_percent_off(model, onnx_file, road_run, tmp_path, weight):
    _, batch, expected, _ = road_run("synthetic-3")
    proto = onnx.load(str(onnx_file))
    (initializer,) = [i for i in proto.graph.initializer if i.name == weight]
    values = numpy_helper.to_array(initializer).copy()
    values.flat[values.size // 2] *= 1.01  # one of its 216 (360) weights
    initializer.CopyFrom(numpy_helper.from_array(values, initializer.name))
    onnx.save(proto, str(tmp_path / "off.onnx"))
    check = compare_export(model, batch, OnnxTracer(tmp_path / "off.onnx")(batch), expected)
    assert not check.passed, check.describe()


def test_an_argmax_difference_counts_as_a_near_tie_only_between_the_top_two_of_its_window():
    pool_input = torch.tensor([[1.0, 1.0 + 2e-7, 0.5, 0.0], [0.25, 0.0, 0.0, 0.0]]).view(1, 1, 2, 4)
    blank = torch.zeros(1, 1, 1)
    expected = Trace(blank, blank, [torch.tensor([[[[1, 2]]]])], [pool_input])  # the argmaxes of its two windows

    def counts(theirs: list[int]) -> tuple[int, int]:
        ties, others = argmax_differences(expected, Trace(blank, blank, [torch.tensor([[[theirs]]])]))
        return int(ties), int(others)

    assert counts([1, 2]) == (0, 0)
    assert counts([0, 2]) == (1, 0)  # 1.0 for 1+2e-7
    assert counts([4, 2]) == (0, 1)  # 0.25 is no tie with 1+2e-7
    assert counts([2, 2]) == (0, 1)  # the right window's argmax, outside the left one
    assert counts([1, 3]) == (0, 1)  # 0 is no tie with 0.5
    assert counts([1, 8]) == (0, 1)  # outside the plane


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
        assert len(a.lanes) >= 2
        assert_same_lanes(a, b)


def test_torchscript_matches_torch_and_carries_the_settings(checkpoint, model, road_run, tmp_path):
    path = export_torchscript(checkpoint, tmp_path / "lanes.pt")
    _, batch, expected, _ = road_run("synthetic-3")
    for got, want in zip(run_torchscript(path, batch), expected[:2]):
        assert torch.equal(got, want)
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


def figure(text: str, label: str) -> float:
    """The number after `label` in the export command's check line."""
    match = re.search(re.escape(label) + r" ([0-9.e+-]+)", text)
    assert match, f"no '{label}' in: {text}"
    return float(match.group(1))


@pytest.mark.parametrize("fmt, name", [("onnx", "m.onnx"), ("torchscript", "m.pt")])
def test_export_command_writes_and_checks_the_file(tmp_path, fmt, name):
    out = tmp_path / name
    result = processes.run([sys.executable, "-m", "lane_seg_core.cli", "export", "--format", fmt, "--out", str(out)],
                           timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.stat().st_size > 100_000
    check = result.stdout.split("check on 5 synthetic road frames: ")[1]
    assert figure(check, "pixels beyond 1e-04 relative") < 1.0  # percent
    if fmt == "torchscript":
        assert figure(check, "max |exported - torch|") == 0.0
        assert "(max-pool argmaxes not compared)" in check
    else:
        assert figure(check, "other argmax differences") == 0
        assert figure(check, "with the same argmaxes max relative difference") <= 1e-4
