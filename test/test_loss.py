"""Tests for lane_seg_core.loss: discriminative loss against a literal reference, segmentation losses."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode


from lane_seg_core.loss import (
    DiscriminativeLoss,
    DiscriminativeLossTerms,
    LaneSegLoss,
    LaneSegLossTerms,
    SegmentationLoss,
    discriminative_loss,
    lane_class_weights,
    segmentation_loss,
)

import processes

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- reference


def reference_discriminative_loss(
    embedding, instances, delta_v=0.5, delta_d=1.5, alpha=1.0, beta=1.0, gamma=0.001
):
    """The paper's equations, looped literally per image, instance, pixel and pair; returns Python floats."""

    def norm(v):
        return math.sqrt(sum(float(t) ** 2 for t in v))

    batch = embedding.shape[0]
    var_total = dist_total = reg_total = 0.0
    for b in range(batch):
        ids = sorted(i for i in set(instances[b].flatten().tolist()) if i > 0)
        C = len(ids)
        if C == 0:
            continue  # contributes 0 but still counts in the batch denominator
        mus = []
        var_b = 0.0
        for c in ids:
            pixels = embedding[b][:, instances[b] == c].T  # [N_c, D]
            N_c = pixels.shape[0]
            mu = [sum(float(x[k]) for x in pixels) / N_c for k in range(embedding.shape[1])]
            mus.append(mu)
            inner = 0.0
            for x in pixels:
                inner += max(0.0, norm([m - float(xk) for m, xk in zip(mu, x)]) - delta_v) ** 2
            var_b += inner / N_c
        var_total += var_b / C
        if C >= 2:
            dist_b = 0.0
            for a in range(C):
                for bb in range(C):
                    if a != bb:
                        dist_b += max(0.0, 2 * delta_d - norm([p - q for p, q in zip(mus[a], mus[bb])])) ** 2
            dist_total += dist_b / (C * (C - 1))
        reg_total += sum(norm(mu) for mu in mus) / C
    var, dist, reg = var_total / batch, dist_total / batch, reg_total / batch
    return alpha * var + beta * dist + gamma * reg, var, dist, reg


def make_instances(id_lists, h, w, generator):
    """[B,H,W] long map; image b holds background plus every id in id_lists[b] (each at least once)."""
    out = torch.zeros(len(id_lists), h, w, dtype=torch.long)
    for b, ids in enumerate(id_lists):
        if not ids:
            continue
        choices = torch.tensor([0, *ids])
        flat = choices[torch.randint(0, len(choices), (h * w,), generator=generator)]
        perm = torch.randperm(h * w, generator=generator)
        flat[perm[: len(ids)]] = torch.tensor(ids)  # guarantee presence
        out[b] = flat.view(h, w)
    return out


# --------------------------------------------------------------------------- discriminative loss


@pytest.mark.parametrize("dim", [5, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_reference_on_mixed_batch(dim, seed):
    g = torch.Generator().manual_seed(seed)
    id_lists = [
        [3, 17],  # non-contiguous ids
        [],  # image without instances
        [5],  # single instance: dist = 0
        [1, 2, 4, 8, 9, 40],  # 6 instances
    ]
    instances = make_instances(id_lists, 6, 7, g)
    embedding = torch.randn(4, dim, 6, 7, generator=g, dtype=torch.float64) * 1.2
    params = dict(delta_v=0.5, delta_d=1.5, alpha=1.3, beta=0.7, gamma=0.01)
    ref = reference_discriminative_loss(embedding, instances, **params)
    got = discriminative_loss(embedding, instances, 0.5, 1.5, 1.3, 0.7, 0.01)
    assert isinstance(got, DiscriminativeLossTerms)
    assert all(t.dim() == 0 and t.dtype == torch.float64 for t in got)
    for name, r, v in zip(("loss", "var", "dist", "reg"), ref, got):
        assert v.item() == pytest.approx(r, rel=1e-9, abs=1e-9), name
    # every term is exercised (non-trivial hinges)
    assert got.var > 0 and got.dist > 0 and got.reg > 0


def test_matches_reference_single_instance_and_other_deltas():
    g = torch.Generator().manual_seed(7)
    instances = make_instances([[11], [2, 6]], 5, 5, g)
    embedding = torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64)
    ref = reference_discriminative_loss(embedding, instances, delta_v=0.2, delta_d=2.0)
    got = discriminative_loss(embedding, instances, delta_var=0.2, delta_dist=2.0)
    for r, v in zip(ref, got):
        assert v.item() == pytest.approx(r, rel=1e-9, abs=1e-9)


def test_single_instance_batch_has_zero_dist():
    g = torch.Generator().manual_seed(3)
    instances = make_instances([[4], [9]], 4, 4, g)
    embedding = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64)
    terms = discriminative_loss(embedding, instances)
    assert terms.dist.item() == 0.0
    assert terms.var.item() > 0


def test_no_instances_anywhere_is_zero_and_backpropagates():
    embedding = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    terms = discriminative_loss(embedding, torch.zeros(2, 4, 4, dtype=torch.long))
    assert [t.item() for t in terms] == [0.0, 0.0, 0.0, 0.0]
    terms.loss.backward()
    assert torch.equal(embedding.grad, torch.zeros_like(embedding))


def test_hand_computed_values():
    # Image 0, D=2, four pixels: id 3 at (0,0),(2,0) -> mu=(1,0), each 1 away; id 17 at (1,2); one background.
    embedding = torch.zeros(2, 2, 1, 4, dtype=torch.float64)
    embedding[0, :, 0, 0] = torch.tensor([0.0, 0.0])
    embedding[0, :, 0, 1] = torch.tensor([2.0, 0.0])
    embedding[0, :, 0, 2] = torch.tensor([1.0, 2.0])
    embedding[0, :, 0, 3] = torch.tensor([100.0, -100.0])  # background, must be ignored
    embedding[1] = 42.0  # image 1 is all background
    instances = torch.tensor([[[3, 3, 17, 0]], [[0, 0, 0, 0]]])
    terms = discriminative_loss(
        embedding, instances, delta_var=0.5, delta_dist=1.5, alpha=2.0, beta=3.0, gamma=0.1
    )
    # image 0: var = ((1-0.5)^2 + 0)/2 = 0.125; |mu3-mu17| = 2, dist = 2*(3-2)^2 / (2*1) = 1
    # (not halved); reg = (1 + sqrt 5)/2. Batch = mean over 2 images.
    var, dist, reg = 0.125 / 2, 1.0 / 2, (1 + math.sqrt(5)) / 4
    assert terms.var.item() == pytest.approx(var, abs=1e-12)
    assert terms.dist.item() == pytest.approx(dist, abs=1e-12)
    assert terms.reg.item() == pytest.approx(reg, abs=1e-12)
    assert terms.loss.item() == pytest.approx(2 * var + 3 * dist + 0.1 * reg, abs=1e-12)


def test_absent_ids_do_not_count_as_clusters():
    # Only ids present in the image count (the replaced code always used 5 clusters).
    embedding = torch.tensor([[[[0.0, 0.0, 4.0, 4.0]]]], dtype=torch.float64)
    terms = discriminative_loss(embedding, torch.tensor([[[1, 1, 5, 5]]]))
    assert terms.var.item() == 0.0
    assert terms.dist.item() == 0.0
    assert terms.reg.item() == pytest.approx(2.0)  # (0 + 4) / 2, not / 5


def test_gradcheck():
    g = torch.Generator().manual_seed(11)
    instances = make_instances([[2, 7, 9], [4]], 3, 4, g)
    embedding = (torch.randn(2, 3, 3, 4, generator=g, dtype=torch.float64) * 0.7).requires_grad_()

    def fn(e):
        return tuple(discriminative_loss(e, instances, gamma=0.1))

    terms = fn(embedding)
    assert all(t.item() > 0 for t in terms)  # every branch carries gradient
    assert torch.autograd.gradcheck(fn, (embedding,), eps=1e-6, atol=1e-7)


def test_gradients_finite_at_zero_distances():
    # Embeddings exactly at their mean, two coinciding means, and a mean at the origin.
    embedding = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    embedding[0, :, 0, :] = torch.tensor([0.5, 0.25])[:, None]  # id 1, all at (0.5, 0.25)
    embedding[0, :, 1, :2] = torch.tensor([0.5, 0.25])[:, None]  # id 2, same point
    embedding[0, :, 1, 2] = 0.0  # id 3 at the origin
    embedding.requires_grad_()
    instances = torch.tensor([[[1, 1, 1], [2, 2, 3]]])
    terms = discriminative_loss(embedding, instances)
    assert terms.var.item() == 0.0
    # pairs (1,2),(2,1): 3^2 each; four pairs with id 3 at distance |(0.5,0.25)|
    d13 = math.hypot(0.5, 0.25)
    assert terms.dist.item() == pytest.approx((2 * 9 + 4 * (3 - d13) ** 2) / 6, abs=1e-12)
    terms.loss.backward()
    assert torch.isfinite(embedding.grad).all()


def test_gradients_finite_at_zero_distances_float32():
    embedding = torch.full((1, 4, 3, 3), 0.5, requires_grad=True)
    instances = torch.tensor([[[1, 1, 1], [2, 2, 2], [0, 0, 0]]])
    terms = discriminative_loss(embedding, instances)
    terms.loss.backward()
    assert torch.isfinite(terms.loss) and torch.isfinite(embedding.grad).all()


def test_perfect_clustering_scores_zero_and_worse_scores_higher():
    h, w = 6, 6
    instances = torch.zeros(1, h, w, dtype=torch.long)
    instances[0, 0:2] = 4
    instances[0, 2:4] = 8
    instances[0, 4:5] = 15
    centres = {4: (0.0, 0.0), 8: (4.0, 0.0), 15: (0.0, 4.0)}  # pairwise >= 4 > 2 * delta_d = 3
    g = torch.Generator().manual_seed(0)
    embedding = torch.randn(1, 2, h, w, generator=g, dtype=torch.float64) * 10  # background: anything
    for k, (cx, cy) in centres.items():
        m = instances[0] == k
        jitter = (torch.rand(2, int(m.sum()), generator=g, dtype=torch.float64) - 0.5) * 0.2  # within delta_v
        embedding[0, 0][m] = cx + jitter[0]
        embedding[0, 1][m] = cy + jitter[1]
    perfect = discriminative_loss(embedding, instances)
    assert perfect.var.item() == 0.0
    assert perfect.dist.item() == 0.0

    noisy = embedding.clone()
    fg = instances[0] > 0
    noisy[0, :, fg] += torch.randn(2, int(fg.sum()), generator=g, dtype=torch.float64)
    crowded = embedding.clone()
    crowded[0, 0][instances[0] == 8] -= 2.5  # centre now 1.5 from instance 4
    worse_var = discriminative_loss(noisy, instances)
    worse_dist = discriminative_loss(crowded, instances)
    assert worse_var.var > 0 and worse_var.loss > perfect.loss
    assert worse_dist.dist > 0 and worse_dist.loss > perfect.loss


def test_many_instances_match_reference():
    g = torch.Generator().manual_seed(5)
    ids = torch.randperm(200, generator=g)[:50].add(1).tolist()
    instances = make_instances([ids, ids[:20]], 12, 12, g)
    embedding = torch.randn(2, 4, 12, 12, generator=g, dtype=torch.float64) * 2
    ref = reference_discriminative_loss(embedding, instances)
    got = discriminative_loss(embedding, instances)
    for r, v in zip(ref, got):
        assert v.item() == pytest.approx(r, rel=1e-9, abs=1e-9)


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def _count_ops(batch, n_instances):
    g = torch.Generator().manual_seed(batch * 100 + n_instances)
    ids = list(range(1, 2 * n_instances + 1, 2))
    instances = make_instances([ids] * batch, 16, 16, g)
    embedding = torch.randn(batch, 4, 16, 16, generator=g, requires_grad=True)
    with _OpCounter() as counter:
        discriminative_loss(embedding, instances).loss.backward()
    return counter.count


def test_number_of_tensor_ops_does_not_depend_on_images_or_instances():
    # A Python loop over images or instances would make the dispatched op count grow with them.
    # (B >= 2 throughout: for B == 1 the [B,D,H,W] -> [B*H*W,D] flatten is a view, one op fewer.)
    base = _count_ops(2, 2)
    assert base > 0
    assert _count_ops(2, 50) == base
    assert _count_ops(7, 3) == base
    assert _count_ops(7, 50) == base


def test_the_loss_benchmark_compares_5_and_50_instances_with_a_loop():
    """The cost of many instances is a benchmark (benchmarks/loss.py), not a timed test; here it must run."""
    result = processes.run([sys.executable, str(REPO / "benchmarks" / "loss.py"), "--quick"], timeout=180, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"^\| tensor maths \(lane_seg_core\.loss\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", result.stdout, re.M)
    assert re.search(r"^\| loop over images and instances \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", result.stdout, re.M)
    assert re.search(r"^The loop computes the same loss \(50 instances\): \|difference\| = \S+: PASS$", result.stdout,
                     re.M), result.stdout
    assert re.search(r"^Loss cost growth from 5 to 50 instances: [\d.]+x <= 2\.0x: (PASS|FAIL)$", result.stdout, re.M)
    assert re.search(r"^Speed-up over the loop at 50 instances: [\d.]+x > 1: (PASS|FAIL)$", result.stdout, re.M)


def _autocast_case(device, dtype):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 1).to(device)
    x = torch.randn(2, 3, 16, 16, device=device) * 1000  # large embeddings: squared norms ~1e6+
    instances = make_instances([[1, 2, 3], [5]], 16, 16, torch.Generator().manual_seed(0)).to(device)
    with torch.autocast(device_type=device, dtype=dtype):
        embedding = conv(x)
        assert embedding.dtype == dtype
        terms = discriminative_loss(embedding, instances)
    assert all(t.dtype == torch.float32 for t in terms)
    assert all(torch.isfinite(t) for t in terms)
    terms.loss.backward()
    assert torch.isfinite(conv.weight.grad).all() and torch.isfinite(conv.bias.grad).all()
    # Reductions run in float32: same result as the float32 loss of the same low-precision embedding.
    ref = discriminative_loss(embedding.detach().float(), instances)
    for r, v in zip(ref, terms):
        assert v.item() == pytest.approx(r.item(), rel=1e-5)


def test_autocast_bfloat16_cpu_finite():
    _autocast_case("cpu", torch.bfloat16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_autocast_float16_cuda_finite():
    _autocast_case("cuda", torch.float16)


def test_module_wraps_function_and_shows_parameters():
    module = DiscriminativeLoss(delta_var=0.3, delta_dist=2.0, alpha=1.5, beta=0.5, gamma=0.01)
    stored = (module.delta_var, module.delta_dist, module.alpha, module.beta, module.gamma)
    assert stored == (0.3, 2.0, 1.5, 0.5, 0.01)
    text = repr(module)
    for part in ("delta_var=0.3", "delta_dist=2.0", "alpha=1.5", "beta=0.5", "gamma=0.01"):
        assert part in text
    g = torch.Generator().manual_seed(2)
    instances = make_instances([[1, 3], [2]], 4, 5, g)
    embedding = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    expected = discriminative_loss(embedding, instances, 0.3, 2.0, 1.5, 0.5, 0.01)
    for e, v in zip(expected, module(embedding, instances)):
        assert torch.equal(e, v)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="instances"):
        discriminative_loss(torch.randn(2, 3, 4, 5), torch.zeros(2, 4, 6, dtype=torch.long))


# --------------------------------------------------------------------------- segmentation


def test_lane_class_weights_known_mask():
    mask = torch.zeros(2, 5, 10, dtype=torch.long)
    mask[0, 0, :5] = 1  # 5 of 100 pixels are lane
    w = lane_class_weights(mask)
    expected = torch.tensor([1 / math.log(1.02 + 0.95), 1 / math.log(1.02 + 0.05)])
    assert w.shape == (2,) and w.dtype == torch.float32
    assert torch.allclose(w, expected, rtol=1e-6)
    assert 1.4 < w[0] < 1.6 and 10 < w[1] < 20
    assert torch.allclose(lane_class_weights(mask, c=1.5), 1 / torch.log(1.5 + torch.tensor([0.95, 0.05])))


def test_lane_class_weights_rejects_bad_input():
    with pytest.raises(ValueError, match="class id"):
        lane_class_weights(torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="c must be > 1"):
        lane_class_weights(torch.tensor([[0, 1]]), c=1.0)


def _seg_case(seed=0, lane_fraction=0.1):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 2, 8, 8, generator=g, dtype=torch.float64) * 2
    mask = (torch.rand(2, 8, 8, generator=g) < lane_fraction).long()
    mask[0, 0, 0] = 1
    return logits, mask


def test_ce_and_weighted_ce_match_torch():
    logits, mask = _seg_case()
    assert torch.allclose(segmentation_loss(logits, mask, "ce"), F.cross_entropy(logits, mask), rtol=1e-12)
    w = lane_class_weights(mask).double()
    expected = F.cross_entropy(logits, mask, weight=w)
    got = segmentation_loss(logits, mask, "weighted_ce")
    assert torch.allclose(got, expected, rtol=1e-12)
    assert not torch.allclose(got, F.cross_entropy(logits, mask))


def test_weighted_ce_weights_are_not_differentiated():
    logits, mask = _seg_case()
    logits.requires_grad_()
    segmentation_loss(logits, mask, "weighted_ce").backward()
    ref = logits.detach().clone().requires_grad_()
    F.cross_entropy(ref, mask, weight=lane_class_weights(mask).double()).backward()
    assert torch.allclose(logits.grad, ref.grad, rtol=1e-12)


def test_focal_gamma_zero_is_alpha_weighted_pixel_mean_of_ce():
    logits, mask = _seg_case(1)
    w = lane_class_weights(mask).double()
    alpha = w / w.sum()
    expected = F.cross_entropy(logits, mask, weight=alpha, reduction="none").mean()
    got = segmentation_loss(logits, mask, "focal", focal_gamma=0.0)
    assert torch.allclose(got, expected, rtol=1e-12)


def _uniform_margin_logits(mask, margin):
    # every pixel's true-class logit exceeds the other by `margin`, so all pixels share one p_t
    onehot = F.one_hot(mask, 2).permute(0, 3, 1, 2).double()
    return onehot * margin


@pytest.mark.parametrize("margin", [4.0, -1.0])
def test_focal_scales_each_pixel_by_one_minus_pt_to_gamma(margin):
    _, mask = _seg_case(2)
    logits = _uniform_margin_logits(mask, margin)
    pt = torch.sigmoid(torch.tensor(margin, dtype=torch.float64))
    ratio = segmentation_loss(logits, mask, "focal", 2.0) / segmentation_loss(logits, mask, "focal", 0.0)
    assert ratio.item() == pytest.approx(((1 - pt) ** 2).item(), rel=1e-10)


def test_focal_down_weights_easy_pixels():
    _, mask = _seg_case(3)
    easy = _uniform_margin_logits(mask, 4.0)
    hard = _uniform_margin_logits(mask, 0.2)
    ce_ratio = F.cross_entropy(easy, mask) / F.cross_entropy(hard, mask)
    focal_ratio = segmentation_loss(easy, mask, "focal") / segmentation_loss(hard, mask, "focal")
    assert focal_ratio < ce_ratio / 10


def test_focal_finite_gradient_for_saturated_logits():
    _, mask = _seg_case(4)
    logits = _uniform_margin_logits(mask, 200.0).float().requires_grad_()
    loss = segmentation_loss(logits, mask, "focal")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_unknown_kind_raises_with_allowed_values():
    logits, mask = _seg_case()
    for make in (lambda: segmentation_loss(logits, mask, "dice"), lambda: SegmentationLoss("dice")):
        with pytest.raises(ValueError) as info:
            make()
        message = str(info.value)
        assert "dice" in message
        assert all(k in message for k in ("weighted_ce", "focal", "ce"))


@pytest.mark.parametrize("kind", ["weighted_ce", "focal", "ce"])
def test_segmentation_autocast_bfloat16_float32_result(kind):
    logits, mask = _seg_case(5)
    logits = (logits.float() * 100).requires_grad_()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        low = logits.to(torch.bfloat16)
        loss = segmentation_loss(low, mask, kind)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(segmentation_loss(low.detach().float(), mask, kind).item(), rel=1e-5)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_segmentation_module_wraps_function():
    logits, mask = _seg_case(6)
    module = SegmentationLoss("focal", focal_gamma=1.5)
    assert "focal" in repr(module) and "1.5" in repr(module)
    assert torch.equal(module(logits, mask), segmentation_loss(logits, mask, "focal", 1.5))


# --------------------------------------------------------------------------- combined


@pytest.mark.parametrize("seg_kind", ["weighted_ce", "focal", "ce"])
def test_lane_seg_loss_is_weighted_sum_of_parts(seg_kind):
    g = torch.Generator().manual_seed(9)
    instances = make_instances([[2, 5, 6], [], [1]], 6, 6, g)
    mask = (instances > 0).long()
    logits = torch.randn(3, 2, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    embedding = torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    module = LaneSegLoss(
        delta_var=0.4, delta_dist=2.0, seg_kind=seg_kind, seg_weight=0.7, embed_weight=2.5,
        alpha=1.1, beta=0.9, gamma=0.01,
    )
    terms = module(logits, embedding, mask, instances)
    assert isinstance(terms, LaneSegLossTerms)
    seg = segmentation_loss(logits, mask, seg_kind)
    disc = discriminative_loss(embedding, instances, 0.4, 2.0, 1.1, 0.9, 0.01)
    assert terms.seg.item() == pytest.approx(seg.item(), rel=1e-12)
    assert (terms.var.item(), terms.dist.item(), terms.reg.item()) == pytest.approx(
        (disc.var.item(), disc.dist.item(), disc.reg.item()), rel=1e-12
    )
    assert terms.loss.item() == pytest.approx(0.7 * seg.item() + 2.5 * disc.loss.item(), rel=1e-12)
    terms.loss.backward()
    assert logits.grad.abs().sum() > 0 and embedding.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(delta_var=0.0), "delta_var"),
        (dict(delta_var=-1.0), "delta_var"),
        (dict(delta_var=0.5, delta_dist=0.5), "delta_dist"),
        (dict(delta_var=0.5, delta_dist=0.2), "delta_dist"),
        (dict(seg_weight=-1.0), "seg_weight"),
        (dict(embed_weight=float("nan")), "embed_weight"),
        (dict(alpha=-0.1), "alpha"),
        (dict(beta=-0.1), "beta"),
        (dict(gamma=-0.1), "gamma"),
        (dict(seg_kind="dice"), "seg_kind"),
        (dict(focal_gamma=-1.0), "focal_gamma"),
    ],
)
def test_lane_seg_loss_rejects_bad_args(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LaneSegLoss(**kwargs)


def test_discriminative_loss_rejects_bad_deltas():
    with pytest.raises(ValueError, match="delta_dist"):
        DiscriminativeLoss(delta_var=1.0, delta_dist=0.5)
    with pytest.raises(ValueError, match="delta_var"):
        discriminative_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), delta_var=0.0)
