"""Widen a trained SegNet without changing what it computes (Net2WiderNet, Chen et al. 2016).

Each layer of the wider model copies its old layer's channels and repeats some of them; the next layer splits
the outgoing weights of a repeated channel between its copies, in unequal random shares that sum to one, so
that the wider model's outputs equal the old one's and the copies still learn apart in fine-tuning. The copies
of a channel pool at the same positions, so the decoder's unpooling with the encoder's indices stays right.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .checkpoint import Checkpoint
from .model import ConvBnRelu, SegNet


def channel_map(old: int, new: int) -> np.ndarray:
    """Old channel of each of `new` channels: every old one once, then the first new - old again.

    It depends on the two counts only: an encoder stage and the decoder stage that unpools with its indices
    have the same counts, so their channels stay paired.
    """
    if new < old:
        raise ValueError(f"cannot widen {old} channels to {new}: the new width must not be smaller")
    return np.concatenate([np.arange(old), np.arange(new - old) % old])


def _shares(old_of_new: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Share of its old channel's outgoing weight that each new channel carries; a channel's shares sum to 1."""
    shares = np.ones(len(old_of_new))
    for channel in np.unique(old_of_new):
        copies = np.flatnonzero(old_of_new == channel)
        if len(copies) > 1:
            shares[copies] = rng.dirichlet(np.full(len(copies), 4.0))
    return torch.tensor(shares, dtype=torch.float32)


def _blocks(model: SegNet) -> list[ConvBnRelu]:
    """Every conv-BN-ReLU block in the order the data passes them (encoder, then decoder)."""
    return [block for stage in (*model.encoder.stages, *model.decoder.stages) for block in stage]


def _input_weights(weight: torch.Tensor, old_of_new: np.ndarray, shares: torch.Tensor) -> torch.Tensor:
    """A conv weight [out,in_old,k,k] -> [out,in_new,k,k] reading the new input channels."""
    return weight[:, torch.from_numpy(old_of_new)] * shares.to(weight)[None, :, None, None]


@torch.no_grad()
def widen_segnet(model: SegNet, width: float, seed: int = 0) -> SegNet:
    """A SegNet of `width` (>= the model's) that computes what `model` does, on the CPU in eval mode."""
    config = model.config
    if width < config.width:
        raise ValueError(f"width must be >= the model's width {config.width}, got {width}")
    wider = SegNet(config.in_channels, config.num_classes, config.embed_dim, width)
    rng = np.random.default_rng(seed)
    old_of_new, shares = np.arange(config.in_channels), torch.ones(config.in_channels)
    for old, new in zip(_blocks(model), _blocks(wider)):
        out_map = channel_map(old.conv.out_channels, new.conv.out_channels)
        index = torch.from_numpy(out_map)
        new.conv.weight.copy_(_input_weights(old.conv.weight.cpu(), old_of_new, shares)[index])
        new.conv.bias.copy_(old.conv.bias.cpu()[index])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new.bn, name).copy_(getattr(old.bn, name).cpu()[index])
        new.bn.num_batches_tracked.copy_(old.bn.num_batches_tracked)
        old_of_new, shares = out_map, _shares(out_map, rng)
    for name in ("lane_head", "embedding_head"):
        old, new = getattr(model, name), getattr(wider, name)
        new.weight.copy_(_input_weights(old.weight.cpu(), old_of_new, shares))
        new.bias.copy_(old.bias.cpu())
    return wider.eval()


def widen_checkpoint(checkpoint: Checkpoint, width: float, seed: int = 0) -> Checkpoint:
    """The checkpoint with its model widened (settings kept, training state dropped, `widened_from` recorded)."""
    wider = widen_segnet(checkpoint.build_model(), width, seed)
    metrics = dict(checkpoint.metrics, widened_from=checkpoint.model_config.width, widen_seed=seed)
    return replace(checkpoint, model_config=wider.config, state_dict=wider.state_dict(), metrics=metrics,
                   training_state=None)
