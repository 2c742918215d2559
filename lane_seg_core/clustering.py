"""Grouping pixel embeddings into lane instances: a fast torch mean shift, and sklearn references."""

from __future__ import annotations

import numpy as np
import torch

CLUSTER_METHODS = ("meanshift", "dbscan", "sklearn_meanshift")


def cluster_embeddings(
    embedding: torch.Tensor, bandwidth: float, min_points: int = 10, max_seed_points: int = 512, max_clusters: int = 32
) -> torch.Tensor:
    """Group [N,D] embeddings into lanes; returns [N] long labels 0..K-1, -1 for noise, on the same device.

    Greedy mean shift with a flat kernel on at most `max_seed_points` points: start at the densest
    unassigned point, move the centre to the mean of the unassigned points within `bandwidth` until it
    settles, keep it, repeat while some point still has enough neighbours. Every point then joins its
    nearest centre if it lies within `bandwidth`. A few pixels between two lanes cannot chain them
    together (as they can in DBSCAN): centres sit on density peaks and each pixel goes to the nearest one.
    Deterministic: the subset is a fixed pseudo-random one and ties go to the lowest index.
    """
    n = embedding.shape[0]
    labels = torch.full((n,), -1, dtype=torch.long, device=embedding.device)
    if n < min_points:
        return labels
    x = embedding.float()
    sample = x
    if n > max_seed_points:
        # a fixed pseudo-random subset: evenly strided picks can alias with the pixels' row-major order
        pick = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:max_seed_points].sort().values
        sample = x[pick.to(x.device)]
    scale = n / len(sample)  # points each sampled point stands for
    near = torch.cdist(sample, sample) < bandwidth
    density = near.to(torch.uint8).sum(dim=1, dtype=torch.int32)  # faster than summing bools on the CPU
    unassigned = torch.ones(len(sample), dtype=torch.bool, device=x.device)
    centres = []
    while len(centres) < max_clusters:
        seed = int(torch.where(unassigned, density, -1).argmax())
        if not bool(unassigned[seed]) or int(density[seed]) * scale < min_points:
            break  # no unassigned point has enough neighbours left to start a lane
        members = near[seed] & unassigned
        for _ in range(10):
            weights = members.to(sample.dtype)
            centre = weights @ sample / weights.sum()
            moved = unassigned & ((sample - centre).square().sum(dim=1) < bandwidth * bandwidth)
            if torch.equal(moved, members):  # a flat kernel settles once its members stop changing
                break
            members = moved
        members[seed] = True
        if int(members.count_nonzero()) * scale >= min_points:
            centres.append(centre)
        unassigned &= ~members
    if not centres:
        return labels
    distance, nearest = torch.cdist(x, torch.stack(centres)).min(dim=1)
    return _relabel(torch.where(distance < bandwidth, nearest, -1), len(centres), min_points)


def _relabel(labels: torch.Tensor, count: int, min_points: int) -> torch.Tensor:
    """Drop clusters under `min_points` (to -1) and number the rest 0..K-1 in their original order."""
    valid = labels >= 0
    sizes = torch.bincount(labels[valid], minlength=count)
    keep = sizes >= min_points
    new_ids = torch.cumsum(keep.long(), 0) - 1
    out = torch.full_like(labels, -1)
    out[valid] = torch.where(keep[labels[valid]], new_ids[labels[valid]], -1)
    return out


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
    return _relabel(torch.from_numpy(found).to(embedding.device), int(found.max()) + 1, min_points)


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
