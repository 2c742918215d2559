"""The dataset writer: frames as tuSimple clips/*/20.jpg plus label_data_<name>.json, in worker processes."""

from __future__ import annotations

import multiprocessing
import numbers
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import cv2

from ..tusimple import H_SAMPLES, LaneRecord
from .real_layouts import load_layouts
from .render import render_scene, sample_frame
from .scene import DEFAULT_CONFIG, SynthConfig

FRAMES_PER_CLIP = 100  # frames grouped under one clips/<seq_id>/ directory
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def raw_file_for(name: str, index: int) -> str:
    """tuSimple-style relative image path of frame `index`: clips/<name>_<clip>/<frame>/20.jpg."""
    return f"clips/{name}_{index // FRAMES_PER_CLIP:04d}/{index:06d}/20.jpg"




def _make_frame(job: tuple[str, int, int, str, SynthConfig]) -> str:
    """Render, write one frame's JPEG and return its label line (worker entry point)."""
    out_dir, seed, index, name, config = job
    params = sample_frame(seed, index, config)
    image, lanes = render_scene(params)
    raw_file = raw_file_for(name, index)
    path = Path(out_dir) / raw_file
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, params.lighting.jpeg_quality])
    if not ok:  # pragma: no cover
        raise RuntimeError(f"JPEG encoding failed for {raw_file}")
    path.write_bytes(jpeg.tobytes())
    return LaneRecord(raw_file, H_SAMPLES, tuple(tuple(lane) for lane in lanes)).to_json()


def init_worker() -> None:
    """Keep each worker process on one core."""
    cv2.setNumThreads(1)


def _run_jobs(jobs: list, workers: int) -> Iterator[str]:
    """Label lines in job order, computed in this process or in spawn-started worker processes.

    A worker that cannot start or dies (e.g. a `__main__` that spawn cannot re-import) raises
    BrokenProcessPool here instead of hanging.
    """
    if workers == 1:
        yield from map(_make_frame, jobs)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker) as pool:
        yield from pool.map(_make_frame, jobs, chunksize=4)


def generate_dataset(
    out_dir: str | os.PathLike,
    count: int,
    seed: int,
    name: str = "synth",
    workers: int = 1,
    progress: bool = False,
    config: SynthConfig = DEFAULT_CONFIG,
) -> Path:
    """Write `count` frames + label_data_<name>.json (tuSimple layout) under out_dir; return the label file."""
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"name must match {_NAME_RE.pattern} (used in file names), got {name!r}")
    if config.layouts:
        load_layouts(config.layouts)  # a bad path or file fails here, naming it, not in a worker
    out = Path(out_dir)
    label_path = out / f"label_data_{name}.json"
    if label_path.exists():
        raise ValueError(f"out_dir {str(out)!r} already holds {label_path.name}; refusing to overwrite it")
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    partial = label_path.with_name(label_path.name + ".partial")
    jobs = [(str(out), int(seed), i, name, config) for i in range(int(count))]
    step = max(1, count // 100)
    with open(partial, "w", encoding="utf-8") as fh:
        for done, line in enumerate(_run_jobs(jobs, int(min(workers, count))), start=1):
            fh.write(line + "\n")
            if progress and (done % step == 0 or done == count):
                end = "\n" if done == count else ""
                print(f"\r{label_path.name}: {done}/{count} frames", end=end, file=sys.stderr, flush=True)
    if label_path.exists():  # created concurrently by someone else: keep theirs, keep ours as .partial
        raise ValueError(f"out_dir {str(out)!r} gained {label_path.name} while generating; ours is {partial.name}")
    os.replace(partial, label_path)
    return label_path
