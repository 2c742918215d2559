"""Benchmark of the discriminative loss: its cost must not grow with the number of lane instances.

    .venv/bin/python benchmarks/loss.py [--quick] [--repeats N]

The loss (forward and backward) on a batch of 4 embeddings [4,5,128,256] holding 5 and then 50 instances per
image, against a baseline in the same process: the same maths as a Python loop over images and instances, as
the original implementation computed it. Prints median ms and two verdicts:

- cost(50 instances) / cost(5 instances) <= 2.0 (tensor maths over all instances at once);
- the loop takes longer than the tensor maths at 50 instances (the speed-up is printed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

if __package__ in (None, ""):  # run as a script: make the repository's lane_seg_core importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from lane_seg_core.loss import discriminative_loss
from machine import cpu_model, load_average, verdict  # benchmarks/machine.py, beside this script

BATCH, DIM, HEIGHT, WIDTH = 4, 5, 128, 256
GROWTH_LIMIT = 2.0  # promise: 10x the instances cost at most 2x the time
DELTA_VAR, DELTA_DIST = 0.5, 1.5


def instances_map(count: int, generator: torch.Generator) -> torch.Tensor:
    """[B,H,W] long: background 0 and `count` instances per image, as vertical stripes (lanes)."""
    columns = torch.randint(0, count + 1, (BATCH, 1, WIDTH), generator=generator)
    return columns.expand(BATCH, HEIGHT, WIDTH).contiguous()


def looped_loss(embedding: torch.Tensor, instances: torch.Tensor) -> torch.Tensor:
    """The paper's variance + distance + regularisation terms, one image and one instance at a time."""
    total = embedding.new_zeros(())
    for b in range(embedding.shape[0]):
        flat, ids = embedding[b].flatten(1), instances[b].flatten()
        means, variance = [], embedding.new_zeros(())
        for k in ids.unique().tolist():
            if k == 0:
                continue
            pixels = flat[:, ids == k]
            mean = pixels.mean(dim=1)
            distance = (pixels - mean[:, None]).norm(dim=0)
            variance = variance + (distance - DELTA_VAR).clamp(min=0).square().mean()
            means.append(mean)
        if not means:
            continue
        centres = torch.stack(means)
        distance_term = embedding.new_zeros(())
        if len(means) > 1:
            pairwise = torch.cdist(centres, centres)
            off_diagonal = ~torch.eye(len(means), dtype=torch.bool)
            distance_term = (2 * DELTA_DIST - pairwise[off_diagonal]).clamp(min=0).square().mean()
        total = total + variance / len(means) + distance_term + 0.001 * centres.norm(dim=1).mean()
    return total / embedding.shape[0]


def time_ms(step: Callable[[], None], repeats: int) -> float:
    """Median wall time of `step` in ms after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def loss_step(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], count: int) -> Callable[[], None]:
    """Forward and backward of `loss_fn` on a fixed random embedding with `count` instances per image."""
    generator = torch.Generator().manual_seed(count)
    embedding = torch.randn(BATCH, DIM, HEIGHT, WIDTH, generator=generator, requires_grad=True)
    instances = instances_map(count, generator)

    def step() -> None:
        embedding.grad = None
        loss_fn(embedding, instances).backward()

    return step


def ours(embedding: torch.Tensor, instances: torch.Tensor) -> torch.Tensor:
    return discriminative_loss(embedding, instances, delta_var=DELTA_VAR, delta_dist=DELTA_DIST).loss


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats: a smoke test of the script")
    parser.add_argument("--repeats", type=int, help="timed runs per case (default 20, 1 with --quick)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 20)
    print(f"Machine: {cpu_model()}, torch {torch.__version__} with {torch.get_num_threads()} threads; "
          f"load average {load_average()}")
    print(f"Discriminative loss, forward + backward, embedding [{BATCH},{DIM},{HEIGHT},{WIDTH}], median of {repeats}\n")
    rows = {(name, count): time_ms(loss_step(fn, count), repeats)
            for name, fn in (("tensor maths (lane_seg_core.loss)", ours), ("loop over images and instances", looped_loss))
            for count in (5, 50)}
    print("| implementation | 5 instances ms | 50 instances ms | 50 / 5 |")
    print("|---|---:|---:|---:|")
    for name in ("tensor maths (lane_seg_core.loss)", "loop over images and instances"):
        few, many = rows[(name, 5)], rows[(name, 50)]
        print(f"| {name} | {few:.1f} | {many:.1f} | {many / few:.2f} |")
    generator = torch.Generator().manual_seed(0)
    embedding, instances = torch.randn(BATCH, DIM, HEIGHT, WIDTH, generator=generator), instances_map(50, generator)
    difference = abs(float(ours(embedding, instances)) - float(looped_loss(embedding, instances)))
    print(f"\nThe loop computes the same loss (50 instances): |difference| = {difference:.1e}: "
          f"{verdict(difference <= 1e-4)}")
    growth = rows[("tensor maths (lane_seg_core.loss)", 50)] / rows[("tensor maths (lane_seg_core.loss)", 5)]
    speedup = rows[("loop over images and instances", 50)] / rows[("tensor maths (lane_seg_core.loss)", 50)]
    print(f"Loss cost growth from 5 to 50 instances: {growth:.2f}x <= {GROWTH_LIMIT:.1f}x: "
          f"{verdict(growth <= GROWTH_LIMIT)}")
    print(f"Speed-up over the loop at 50 instances: {speedup:.1f}x > 1: {verdict(speedup > 1.0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
