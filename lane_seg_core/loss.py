"""Training losses: discriminative instance-embedding loss and class-balanced lane/background loss."""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SEG_KINDS = ("weighted_ce", "focal", "ce")


class DiscriminativeLossTerms(NamedTuple):
    """Weighted total and the three raw terms of the discriminative loss (0-dim tensors)."""

    loss: Tensor
    var: Tensor
    dist: Tensor
    reg: Tensor


class LaneSegLossTerms(NamedTuple):
    """Weighted total, segmentation term and raw discriminative terms (0-dim tensors)."""

    loss: Tensor
    seg: Tensor
    var: Tensor
    dist: Tensor
    reg: Tensor


def _no_autocast(t: Tensor) -> contextlib.AbstractContextManager:
    """Context that disables autocast on t's device type (a no-op where autocast does not exist)."""
    if torch.amp.is_autocast_available(t.device.type):
        return torch.autocast(device_type=t.device.type, enabled=False)
    return contextlib.nullcontext()


def _reduction_dtype(t: Tensor) -> torch.dtype:
    """float32 for half types, otherwise t's (floating) dtype, so float64 stays float64."""
    return torch.promote_types(t.dtype, torch.float32)


def _safe_norm(x: Tensor, dim: int = -1) -> Tensor:
    """Euclidean norm over `dim` whose gradient is 0 (not NaN) where the norm is exactly 0."""
    sq = x.pow(2).sum(dim)
    nonzero = sq > 0
    # Double where: the masked branch must also see a safe sqrt input, or its NaN gradient leaks.
    return torch.where(nonzero, torch.where(nonzero, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def _check_disc_params(delta_var: float, delta_dist: float, alpha: float, beta: float, gamma: float) -> None:
    """Raise ValueError naming the first discriminative-loss hyperparameter outside its range."""
    if not delta_var > 0:
        raise ValueError(f"delta_var must be > 0, got {delta_var}")
    if not delta_dist > delta_var:
        raise ValueError(f"delta_dist must be > delta_var ({delta_var}), got {delta_dist}")
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be finite and >= 0, got {value}")


def _check_seg_params(kind: str, focal_gamma: float) -> None:
    """Raise ValueError for an unknown segmentation kind (naming the allowed ones) or a bad focal_gamma."""
    if kind not in SEG_KINDS:
        raise ValueError(f"unknown segmentation loss kind {kind!r}; expected one of {', '.join(SEG_KINDS)}")
    if not (focal_gamma >= 0 and math.isfinite(focal_gamma)):
        raise ValueError(f"focal_gamma must be finite and >= 0, got {focal_gamma}")


def discriminative_loss(
    embedding: Tensor,
    instances: Tensor,
    delta_var: float = 0.5,
    delta_dist: float = 1.5,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 0.001,
) -> DiscriminativeLossTerms:
    """De Brabandere et al. 2017 loss of embedding [B,D,H,W] given ids [B,H,W] (<= 0 ignored); batch means."""
    _check_disc_params(delta_var, delta_dist, alpha, beta, gamma)
    if embedding.dim() != 4 or instances.shape != (embedding.shape[0], *embedding.shape[2:]):
        raise ValueError(
            f"expected embedding [B,D,H,W] and instances [B,H,W], got {tuple(embedding.shape)} "
            f"and {tuple(instances.shape)}"
        )
    b, d, h, w = embedding.shape
    device = embedding.device
    with _no_autocast(embedding):
        dtype = _reduction_dtype(embedding)
        emb = embedding.to(dtype).permute(0, 2, 3, 1).reshape(-1, d)  # [B*H*W, D]
        ids = instances.reshape(-1).long()
        image = torch.arange(b, device=device).repeat_interleave(h * w)

        fg = ids > 0
        x = emb[fg]  # [P, D] foreground embeddings
        stride = max(int(ids.max()), 0) + 1 if ids.numel() else 1
        # Dense segment index per (image, id); unique sorts, so each image's segments are contiguous.
        keys, seg = torch.unique(image[fg] * stride + ids[fg], return_inverse=True)
        n_seg = keys.numel()
        seg_image = keys // stride  # [S]

        n_pix = torch.bincount(seg, minlength=n_seg).to(dtype)  # [S], all >= 1
        mu = torch.zeros(n_seg, d, device=device, dtype=dtype).index_add_(0, seg, x) / n_pix[:, None]

        n_inst = torch.bincount(seg_image, minlength=b)  # [B] C per image
        per_image = n_inst.clamp(min=1).to(dtype)  # images without instances contribute 0

        hinge_var = (_safe_norm(mu[seg] - x) - delta_var).clamp(min=0).pow(2)  # [P]
        var_seg = torch.zeros(n_seg, device=device, dtype=dtype).index_add_(0, seg, hinge_var) / n_pix
        var_img = torch.zeros(b, device=device, dtype=dtype).index_add_(0, seg_image, var_seg) / per_image

        reg_seg = _safe_norm(mu)  # [S]
        reg_img = torch.zeros(b, device=device, dtype=dtype).index_add_(0, seg_image, reg_seg) / per_image

        # Pairwise centre distances per image on a zero-padded [B, Cmax, D] tensor of means.
        c_max = int(n_inst.max()) if b else 0
        slot = torch.arange(n_seg, device=device) - (torch.cumsum(n_inst, 0) - n_inst)[seg_image]
        mu_pad = torch.zeros(b, c_max, d, device=device, dtype=dtype).index_put((seg_image, slot), mu)
        valid = torch.zeros(b, c_max, device=device, dtype=torch.bool).index_put(
            (seg_image, slot), torch.ones_like(slot, dtype=torch.bool)
        )
        pair = valid[:, :, None] & valid[:, None, :] & ~torch.eye(c_max, device=device, dtype=torch.bool)
        centre_dist = _safe_norm(mu_pad[:, :, None, :] - mu_pad[:, None, :, :])  # [B, Cmax, Cmax]
        hinge_dist = (2 * delta_dist - centre_dist).clamp(min=0).pow(2) * pair
        n_pairs = (n_inst * (n_inst - 1)).clamp(min=1).to(dtype)
        dist_img = hinge_dist.sum((1, 2)) / n_pairs

        var, dist, reg = var_img.mean(), dist_img.mean(), reg_img.mean()
        loss = alpha * var + beta * dist + gamma * reg
    return DiscriminativeLossTerms(loss, var, dist, reg)


def lane_class_weights(binary_mask: Tensor, num_classes: int = 2, c: float = 1.02) -> Tensor:
    """LaneNet bounded inverse class frequency 1/ln(c + p_k) of the batch mask [B,H,W] -> [num_classes]."""
    if not c > 1:
        raise ValueError(f"c must be > 1 (else ln(c + p) can be <= 0), got {c}")
    counts = torch.bincount(binary_mask.reshape(-1).long(), minlength=num_classes)
    if counts.numel() > num_classes:
        raise ValueError(
            f"binary_mask has class id {counts.numel() - 1}, expected ids in [0, {num_classes - 1}]"
        )
    p = counts.to(torch.float32) / max(binary_mask.numel(), 1)
    return 1.0 / torch.log(c + p)


def segmentation_loss(
    logits: Tensor, binary_mask: Tensor, kind: str = "weighted_ce", focal_gamma: float = 2.0
) -> Tensor:
    """Lane/background loss of logits [B,2,H,W] against binary_mask [B,H,W]; kind in SEG_KINDS; 0-dim."""
    _check_seg_params(kind, focal_gamma)
    target = binary_mask.long()
    with _no_autocast(logits):
        x = logits.to(_reduction_dtype(logits))
        if kind == "ce":
            return F.cross_entropy(x, target)
        weight = lane_class_weights(target, num_classes=x.shape[1]).to(x.device, x.dtype).detach()
        if kind == "weighted_ce":
            return F.cross_entropy(x, target, weight=weight)
        log_pt = F.log_softmax(x, dim=1).gather(1, target[:, None]).squeeze(1)  # [B,H,W]
        alpha_t = (weight / weight.sum())[target]
        one_minus_pt = (-torch.expm1(log_pt)).clamp(min=0)  # accurate 1 - pt for confident pixels
        return -(alpha_t * one_minus_pt.pow(focal_gamma) * log_pt).mean()


class DiscriminativeLoss(nn.Module):
    """Module form of `discriminative_loss`: (embedding [B,D,H,W], instances [B,H,W]) -> terms."""

    def __init__(
        self,
        delta_var: float = 0.5,
        delta_dist: float = 1.5,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.001,
    ) -> None:
        super().__init__()
        _check_disc_params(delta_var, delta_dist, alpha, beta, gamma)
        self.delta_var = delta_var
        self.delta_dist = delta_dist
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma

    def forward(self, embedding: Tensor, instances: Tensor) -> DiscriminativeLossTerms:
        """Discriminative loss terms of embedding [B,D,H,W] for instance ids [B,H,W]."""
        return discriminative_loss(
            embedding, instances, self.delta_var, self.delta_dist, self.alpha, self.beta, self.gamma
        )

    def extra_repr(self) -> str:
        return (
            f"delta_var={self.delta_var}, delta_dist={self.delta_dist}, "
            f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}"
        )


class SegmentationLoss(nn.Module):
    """Module form of `segmentation_loss`: (logits [B,2,H,W], binary_mask [B,H,W]) -> 0-dim loss."""

    def __init__(self, kind: str = "weighted_ce", focal_gamma: float = 2.0) -> None:
        super().__init__()
        _check_seg_params(kind, focal_gamma)
        self.kind = kind
        self.focal_gamma = focal_gamma

    def forward(self, logits: Tensor, binary_mask: Tensor) -> Tensor:
        """Segmentation loss of logits [B,2,H,W] against binary_mask [B,H,W]."""
        return segmentation_loss(logits, binary_mask, self.kind, self.focal_gamma)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, focal_gamma={self.focal_gamma}"


class LaneSegLoss(nn.Module):
    """seg_weight * segmentation loss + embed_weight * discriminative loss, with all terms returned."""

    def __init__(
        self,
        delta_var: float = 0.5,
        delta_dist: float = 1.5,
        seg_kind: str = "weighted_ce",
        seg_weight: float = 1.0,
        embed_weight: float = 1.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.001,
        focal_gamma: float = 2.0,
    ) -> None:
        super().__init__()
        for name, value in (("seg_weight", seg_weight), ("embed_weight", embed_weight)):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if seg_kind not in SEG_KINDS:
            raise ValueError(f"seg_kind must be one of {', '.join(SEG_KINDS)}, got {seg_kind!r}")
        self.seg_weight = seg_weight
        self.embed_weight = embed_weight
        self.seg = SegmentationLoss(seg_kind, focal_gamma)
        self.disc = DiscriminativeLoss(delta_var, delta_dist, alpha, beta, gamma)

    def forward(
        self, logits: Tensor, embedding: Tensor, binary_mask: Tensor, instances: Tensor
    ) -> LaneSegLossTerms:
        """Total and parts for logits [B,2,H,W], embedding [B,D,H,W], binary_mask and instances [B,H,W]."""
        seg = self.seg(logits, binary_mask)
        disc = self.disc(embedding, instances)
        loss = self.seg_weight * seg + self.embed_weight * disc.loss
        return LaneSegLossTerms(loss, seg, disc.var, disc.dist, disc.reg)

    def extra_repr(self) -> str:
        return f"seg_weight={self.seg_weight}, embed_weight={self.embed_weight}"
