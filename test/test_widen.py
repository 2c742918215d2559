"""Widening a trained SegNet keeps its outputs and lets the copied channels learn apart."""

import numpy as np
import pytest
import torch

from lane_seg_core.builtin import BUILTIN_CHECKPOINT
from lane_seg_core.checkpoint import load_checkpoint
from lane_seg_core.cli import main
from lane_seg_core.inference import LaneDetector
from lane_seg_core.model import SegNet
from lane_seg_core.synth import render_scene, sample_frame
from lane_seg_core.widen import channel_map, widen_segnet


def _trained_like(width: float) -> SegNet:
    """A random SegNet whose batch norms have non-trivial statistics and affine parameters, as a trained one has."""
    torch.manual_seed(0)
    model = SegNet(width=width)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("width", [0.125, 0.1875, 0.25, 0.3])
def test_the_wider_model_computes_what_the_narrow_one_does(width):
    narrow = _trained_like(0.125)
    wide = widen_segnet(narrow, width)
    assert wide.config.width == width
    x = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        a, b = narrow(x), wide(x)
        # train mode: batch statistics of copied channels are the copies of the old ones
        c, d = narrow.train()(x), wide.train()(x)
    for old, new in ((a, b), (c, d)):
        for name in ("logits", "embedding"):
            scale = getattr(old, name).abs().max().item()
            assert (getattr(old, name) - getattr(new, name)).abs().max().item() <= 1e-4 * max(scale, 1.0)


def test_copied_channels_learn_apart():
    wide = widen_segnet(_trained_like(0.125), 0.1875).train()
    first = wide.encoder.stages[0][0].conv  # 8 -> 12 channels: channels 8..11 copy 0..3
    assert torch.equal(first.weight[8], first.weight[0])
    optimizer = torch.optim.SGD(wide.parameters(), lr=0.1)
    out = wide(torch.rand(2, 3, 64, 128))
    (out.logits.square().mean() + out.embedding.square().mean()).backward()
    optimizer.step()
    assert not torch.allclose(first.weight[8], first.weight[0])


def test_channel_map_pairs_equal_counts_and_refuses_narrowing():
    assert channel_map(8, 12).tolist() == list(range(8)) + [0, 1, 2, 3]
    assert np.array_equal(channel_map(64, 96), channel_map(64, 96))
    with pytest.raises(ValueError, match="smaller"):
        channel_map(12, 8)
    with pytest.raises(ValueError, match="width must be >= the model's width 0.125"):
        widen_segnet(_trained_like(0.125), 0.1)


def test_lane_seg_widen_writes_a_checkpoint_that_finds_the_same_lanes(tmp_path, capsys):
    out = tmp_path / "wide.pt"
    width = load_checkpoint(BUILTIN_CHECKPOINT).model_config.width
    assert main(["widen", "--checkpoint", str(BUILTIN_CHECKPOINT), "--width", str(1.5 * width), "--out", str(out)]) == 0
    assert "the same outputs" in capsys.readouterr().out
    checkpoint = load_checkpoint(out)
    assert checkpoint.model_config.width == 1.5 * width
    assert checkpoint.metrics["widened_from"] == width
    assert checkpoint.postprocess == load_checkpoint(BUILTIN_CHECKPOINT).postprocess
    image = render_scene(sample_frame(20261125, 3))[0][:, :, ::-1].copy()
    narrow = LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, "cpu")(image)
    wide = LaneDetector.from_checkpoint(out, "cpu")(image)
    assert len(narrow.lanes) >= 2
    assert len(wide.lanes) == len(narrow.lanes)
    for a, b in zip(narrow.lanes, wide.lanes):
        assert np.abs(a.points - b.points).max() < 1.0


def test_lane_seg_widen_names_a_bad_width(tmp_path, capsys):
    args = ["widen", "--checkpoint", str(BUILTIN_CHECKPOINT), "--out", str(tmp_path / "w.pt")]
    width = load_checkpoint(BUILTIN_CHECKPOINT).model_config.width
    assert main(args + ["--width", str(width / 2)]) == 2
    assert f"--width must be at least the checkpoint's width {width}" in capsys.readouterr().err
    assert main(args + ["--width", "5"]) == 2
    assert "--width" in capsys.readouterr().err
    assert not (tmp_path / "w.pt").exists()
