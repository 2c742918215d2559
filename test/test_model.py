"""SegNet layout, output shapes, input-size errors and VGG16-BN weight loading."""

import pytest
import torch
from torch import nn

from lane_seg_core.model import SegNet, count_parameters, encoder_convolutions, load_vgg16_bn_encoder


def test_default_segnet_has_the_original_parameter_count():
    assert count_parameters(SegNet()) == 29_447_047


def test_encoder_holds_thirteen_convolutions_in_vgg16_order():
    model = SegNet()
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert [b.conv for b in encoder_convolutions(model)] == convs


@pytest.mark.parametrize("width, batch, height, w", [(0.125, 2, 64, 96), (0.25, 1, 32, 32)])
def test_forward_returns_named_logits_and_embedding(width, batch, height, w):
    model = SegNet(width=width)
    out = model(torch.randn(batch, 3, height, w))
    assert out.logits.shape == (batch, 2, height, w)
    assert out.embedding.shape == (batch, 5, height, w)
    (out.logits.sum() + out.embedding.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_width_scales_channels_and_embed_dim_is_configurable():
    small = SegNet(width=0.125, embed_dim=3)
    assert count_parameters(small) < count_parameters(SegNet()) / 50
    assert small(torch.randn(1, 3, 32, 64)).embedding.shape[1] == 3


@pytest.mark.parametrize("height, width", [(100, 64), (64, 90), (0, 64)])
def test_size_not_multiple_of_32_is_a_clear_error(height, width):
    model = SegNet(width=0.125)
    with pytest.raises(ValueError, match=r"multiples of 32.*got %dx%d" % (height, width)):
        model(torch.randn(1, 3, height, width))


@pytest.fixture(scope="module")
def vgg16_bn_state():
    """A torchvision vgg16_bn state dict (classifier included, as in the real file) with random weights."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    vgg = torchvision.models.vgg16_bn(weights=None)
    for m in vgg.features:
        if isinstance(m, nn.BatchNorm2d):  # make running stats distinguishable from the defaults
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.num_batches_tracked.fill_(7)
    return vgg.state_dict()


def test_vgg16_bn_weights_land_in_the_encoder_exactly_and_in_order(vgg16_bn_state, tmp_path):
    state = vgg16_bn_state
    path = tmp_path / "vgg16_bn.pth"
    # the trainer's --pretrained path: a local torchvision checkpoint; the 0.5 GB classifier is left out of the
    # file (writing it is most of this test's time) and added back after loading, so the loader sees every key
    classifier = {k: v for k, v in state.items() if not k.startswith("features.")}
    torch.save({k: v for k, v in state.items() if k not in classifier}, path)
    model = SegNet()
    load_vgg16_bn_encoder(model, {**torch.load(path, weights_only=True), **classifier})
    conv_ids = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40]
    for block, i in zip(encoder_convolutions(model), conv_ids, strict=True):
        assert torch.equal(block.conv.weight, state[f"features.{i}.weight"])
        assert torch.equal(block.conv.bias, state[f"features.{i}.bias"])
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            assert torch.equal(getattr(block.bn, name), state[f"features.{i + 1}.{name}"])


def test_vgg16_bn_loading_refuses_small_models_and_other_state_dicts(vgg16_bn_state):
    state = vgg16_bn_state
    with pytest.raises(ValueError, match="width=1.0"):
        load_vgg16_bn_encoder(SegNet(width=0.5), state)
    truncated = {k: v for k, v in state.items() if not k.startswith("features.24.")}
    with pytest.raises(ValueError, match="not a torchvision vgg16_bn"):
        load_vgg16_bn_encoder(SegNet(), truncated)
    from torchvision.models.vgg import cfgs, make_layers

    vgg11_bn_features = {f"features.{k}": v for k, v in make_layers(cfgs["A"], batch_norm=True).state_dict().items()}
    with pytest.raises(ValueError, match="not a torchvision vgg16_bn"):
        load_vgg16_bn_encoder(SegNet(), vgg11_bn_features)
