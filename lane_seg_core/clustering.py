"""Grouping pixel embeddings into lane instances: a fast torch mean shift, and sklearn references."""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

CLUSTER_METHODS = ("meanshift", "dbscan", "sklearn_meanshift")


@contextmanager
def one_cpu_thread() -> Iterator[None]:
    """Run torch's CPU ops on the calling thread alone, and restore its thread count after.

    Clustering and post-processing work on small tensors (~1,000 lane pixels, a 512x512 seed matrix): a
    second thread saves little, and on a busy machine each multi-threaded op waits for a descheduled worker
    (cluster + fit measured at 30-120 ms instead of 3 on 2 shared cores). The setting is per thread
    (OpenMP, MKL), so other threads keep theirs.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cluster_embeddings(
    embedding: torch.Tensor, bandwidth: float, min_points: int = 10, max_seed_points: int = 512, max_clusters: int = 32,
    max_rounds: int | None = None,
) -> torch.Tensor:
    """Group [N,D] embeddings into lanes; returns [N] long labels 0..K-1, -1 for noise, on the same device.

    Greedy mean shift with a flat kernel on at most `max_seed_points` points: start at the densest
    unassigned point, move the centre to the mean of the unassigned points within `bandwidth` until it
    settles, keep it, repeat while some point still has enough neighbours (each sampled point standing for
    its share of all points). A lane none of whose points was sampled would be lost, so the search repeats
    on the points that no centre holds and no sampled point stands for (none within `bandwidth`), while it
    finds new centres: once at most `max_seed_points` such points are left, every one of them is searched,
    and a group of at least `min_points` of them within `bandwidth` of its centre gets one (`max_rounds`
    caps the searches; 1 searches the first subset only, as before re-seeding). Every point then
    joins its nearest centre if it lies within `bandwidth`. A few pixels between two lanes cannot chain
    them together (as they can in DBSCAN): centres sit on density peaks and each pixel goes to the nearest
    one. Deterministic: the subsets follow a fixed pseudo-random order and ties go to the lowest index.
    """
    _check_settings(bandwidth, min_points, max_seed_points, max_clusters, max_rounds)
    with one_cpu_thread():
        return _cluster(embedding.float(), bandwidth, min_points, max_seed_points, max_clusters, max_rounds)


def _cluster(
    x: torch.Tensor, bandwidth: float, min_points: int, max_seed_points: int, max_clusters: int, max_rounds: int | None
) -> torch.Tensor:
    """cluster_embeddings on float [N,D] points and checked settings.

    Distances are computed where the points are; the bookkeeping between them is numpy on the CPU (a
    fraction of torch's per-op cost on small arrays).
    """
    n = x.shape[0]
    if n < min_points:
        return torch.full((n,), -1, dtype=torch.long, device=x.device)
    # The points that no centre holds and no sampled point stands for, in a fixed pseudo-random order
    # (evenly strided picks can alias with the pixels' row-major order).
    left = torch.randperm(n, generator=torch.Generator().manual_seed(0)).numpy()
    radius = bandwidth * bandwidth  # squared distances are compared throughout
    count, distance, nearest = 0, None, None  # centres so far; each point's squared distance to its nearest one
    rounds = 0
    while count < max_clusters and len(left) >= min_points:
        rounds += 1
        sample = x[_on(x, np.sort(left[:max_seed_points]))]
        found = _seed_centres(sample, len(left) / len(sample), bandwidth, min_points, max_clusters - count)
        if found is None:
            break
        found_distance, found_nearest = (t.cpu().numpy() for t in _squared_distances(x, found).min(dim=1))
        if distance is None:
            distance, nearest = found_distance, found_nearest
        else:  # an earlier centre wins a tie, as in one minimum over all centres
            closer = found_distance < distance
            distance = np.where(closer, found_distance, distance)
            nearest = np.where(closer, found_nearest + count, nearest)
        count += len(found)
        far = distance >= radius
        if rounds == max_rounds or np.count_nonzero(far) < min_points:  # (usually too few points are left)
            break
        left = left[far[left]]
        # drop the points this sample stood for (within the bandwidth of one): their mass was judged
        left = left[_squared_distances(x[_on(x, left)], sample).min(dim=1).values.cpu().numpy() >= radius]
    if count == 0:
        return torch.full((n,), -1, dtype=torch.long, device=x.device)
    return _on(x, _relabel(np.where(distance < radius, nearest, -1), count, min_points))


def _on(x: torch.Tensor, values: np.ndarray) -> torch.Tensor:
    """A numpy array as a tensor on x's device."""
    return torch.from_numpy(values).to(x.device)


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|^2 of [N,D] and [M,D] points as [N,M], from one matrix product (torch.cdist's way, unrooted)."""
    return torch.addmm(b.square().sum(dim=1), a, b.T, alpha=-2).add_(a.square().sum(dim=1, keepdim=True))


def _seed_centres(
    sample: torch.Tensor, scale: float, bandwidth: float, min_points: int, limit: int
) -> torch.Tensor | None:
    """Greedy flat-kernel mean shift on [M,D] points that stand for `scale` points each; [C,D] centres (None: none)."""
    near = _squared_distances(sample, sample).lt_(bandwidth * bandwidth)  # 0/1 floats: a tenth of bool's cost
    density = near.sum(dim=1)
    # The loop takes many steps on a few hundred points: numpy costs a fraction of torch's per-op overhead
    # on the CPU, and a GPU would wait on a sync at every step.
    points, near, density = (t.cpu().numpy() for t in (sample, near, density))
    unassigned = np.ones(len(points), dtype=bool)
    ones = np.ones(points.shape[1], dtype=points.dtype)  # a row sum as a product: 4x faster than sum(axis=1)
    centres = []
    while len(centres) < limit:
        seed = int(np.where(unassigned, density, -1).argmax())
        if not unassigned[seed] or density[seed] * scale < min_points:
            break  # no unassigned point has enough neighbours left to start a lane
        members = (near[seed] > 0) & unassigned
        for _ in range(10):
            weights = members.astype(points.dtype)
            centre = weights @ points / weights.sum()
            moved = unassigned & (np.square(points - centre) @ ones < bandwidth * bandwidth)
            if np.array_equal(moved, members):  # a flat kernel settles once its members stop changing
                break
            members = moved
        members[seed] = True
        if members.sum() * scale >= min_points:
            centres.append(centre)
        unassigned &= ~members
    return torch.from_numpy(np.stack(centres)).to(sample.device) if centres else None


def _check_settings(
    bandwidth: float, min_points: int, max_seed_points: int, max_clusters: int, max_rounds: int | None
) -> None:
    """ValueError naming the argument and its allowed range."""
    if not (isinstance(bandwidth, numbers.Real) and math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"cluster_embeddings: bandwidth must be a finite number > 0, got {bandwidth}")
    for name, value in (("min_points", min_points), ("max_seed_points", max_seed_points),
                        ("max_clusters", max_clusters), ("max_rounds", 1 if max_rounds is None else max_rounds)):
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"cluster_embeddings: {name} must be an integer >= 1, got {value}")


def _relabel(labels: np.ndarray, count: int, min_points: int) -> np.ndarray:
    """Drop clusters under `min_points` (to -1) and number the rest 0..K-1 in their original order; [N] int64."""
    sizes = np.bincount(labels + 1, minlength=count + 1)  # index label + 1: noise (-1) first
    keep = sizes >= min_points
    keep[0] = False
    return np.where(keep, np.cumsum(keep) - 1, -1)[labels + 1]


def _sklearn_labels(estimator_name: str, embedding: torch.Tensor, min_points: int, **settings) -> torch.Tensor:
    """Labels from an sklearn.cluster estimator on the CPU, as [N] long on the embedding's device."""
    try:
        import sklearn.cluster
    except ImportError:
        raise RuntimeError(f"the {estimator_name} reference needs scikit-learn: pip install 'lane-seg[dev]'") from None
    if embedding.shape[0] < min_points:
        return torch.full((embedding.shape[0],), -1, dtype=torch.long, device=embedding.device)
    estimator = getattr(sklearn.cluster, estimator_name)(**settings)
    found = estimator.fit_predict(embedding.detach().float().cpu().numpy()).astype(np.int64)
    return torch.from_numpy(_relabel(found, int(found.max()) + 1, min_points)).to(embedding.device)


def cluster_dbscan(embedding: torch.Tensor, eps: float, min_points: int = 10) -> torch.Tensor:
    """The original's method, sklearn DBSCAN on the CPU (slow; for comparison); [N,D] -> [N] labels."""
    return _sklearn_labels("DBSCAN", embedding, min_points, eps=eps, min_samples=min_points)


def cluster_sklearn_meanshift(embedding: torch.Tensor, bandwidth: float, min_points: int = 10) -> torch.Tensor:
    """sklearn MeanShift with binned seeds on the CPU (slow; for comparison); [N,D] -> [N] labels."""
    return _sklearn_labels("MeanShift", embedding, min_points, bandwidth=bandwidth, bin_seeding=True,
                           min_bin_freq=min_points, cluster_all=False)


def cluster(embedding: torch.Tensor, method: str, bandwidth: float, min_points: int) -> torch.Tensor:
    """Dispatch to a clustering method by name; `bandwidth` is the lane radius (DBSCAN's eps is half of it)."""
    if method == "meanshift":
        return cluster_embeddings(embedding, bandwidth, min_points)
    if method == "dbscan":
        return cluster_dbscan(embedding, bandwidth / 2, min_points)
    if method == "sklearn_meanshift":
        return cluster_sklearn_meanshift(embedding, bandwidth, min_points)
    raise ValueError(f"clustering method must be one of {', '.join(CLUSTER_METHODS)}, got '{method}'")
