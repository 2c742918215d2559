"""Benchmark of the lane-detection pipeline: per-stage times, the post-processing budget, clustering vs DBSCAN.

    .venv/bin/python benchmarks/pipeline.py [--quick] [--device cpu|cuda|auto] [--repeats N] [--strict]

Prints markdown tables (paste them into the README) and PASS/FAIL lines for the project's promises:

1. per-stage median ms for one 1280x720 synthetic road frame through the full detector, and cluster + fit
   on the built-in model's outputs of 1280x720 frames <= 3 ms on the CPU (its CUDA figure when there is one);
2. (cluster + fit on realistic outputs at 512x256) / (default SegNet CPU forward at 512x256) <= 10%;
3. our clustering vs sklearn DBSCAN: speed-up >= 50x and adjusted Rand index (ours vs truth) >= 0.99; the
   re-seeding (searching the points the first subset missed) costs <= 10% over the first subset alone, and
   finds a 40-point lane among 20,000 points in every pixel order.

Importable: `main(argv)` runs everything; each section is a function. Nothing runs at import time.
Timings are medians over repeats after warm-up (time.perf_counter; CUDA is synchronised); they vary with
the machine's load, so the header prints the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

if __package__ in (None, ""):  # run as a script: make the repository's lane_seg_core importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np
import torch

from lane_seg_core.checkpoint import load_checkpoint
from lane_seg_core.builtin import BUILTIN_CHECKPOINT
from lane_seg_core.clustering import cluster_dbscan, cluster_embeddings
from lane_seg_core.dataset import TuSimpleDataset
from lane_seg_core.inference import LaneDetector, TorchBackend, resolve_device
from lane_seg_core.model import SegNet
from lane_seg_core.postprocess import PostprocessConfig, extract_lanes
from lane_seg_core.preprocess import Preprocessing
from lane_seg_core.synth import generate_dataset
from machine import cpu_model, load_average, verdict  # benchmarks/machine.py, beside this script

STAGES = ("preprocess", "forward", "cluster", "fit", "mask", "total")
FRAME_SEED = 20_250  # synthetic frames of the benchmark (any fixed seed; the built-in model never saw it)
RATIO_LIMIT = 0.10  # promise: cluster + fit <= 10% of the default SegNet's CPU forward at 512x256
SPEEDUP_LIMIT = 50.0  # promise: our clustering >= 50x faster than sklearn DBSCAN (largest synthetic size)
ARI_LIMIT = 0.99  # promise: our clustering recovers the synthetic clusters (ARI vs truth)
BUILTIN_POST_LIMIT_MS = 3.0  # promise: cluster + fit on the built-in model's outputs of a 720p frame, CPU
RESEED_LIMIT = 0.10  # promise: re-seeding costs at most 10% over the first subset alone
SMALL_LANE_SIZES = (4990, 4990, 4990, 4990, 40)  # a 40-point lane among 20,000 points
SMALL_LANE_SPACING = 3.0  # its lanes' centres this far apart (a regular simplex)
DELTA_VAR, DELTA_DIST = 0.5, 3.0  # the discriminative loss margins; bandwidth = 2 * delta_var
CENTRE_SPACING = 2 * DELTA_DIST  # 6: embedding centres of different lanes at least this far apart
EMBED_NOISE_SIGMA, EMBED_NOISE_MAX = 0.15, DELTA_VAR  # realistic embeddings: N(0, 0.15) clipped to norm 0.5


@dataclass
class Settings:
    """How hard to measure; `quick` is a smoke test (under about a minute on 2 cores)."""

    quick: bool = False
    repeats: int = 10  # timed runs of expensive things (a full detector call)
    warmup: int = 2
    frames: int = 6  # synthetic frames rendered (frame 0 is timed; all are used for real embeddings)
    synthetic_sizes: tuple[int, ...] = (8_000, 20_000)
    dbscan_repeats: int = 3  # DBSCAN at 20k points takes seconds per run
    small_lane_orders: int = 50  # pixel orders of the small-lane experiment
    devices: list[torch.device] = field(default_factory=lambda: [torch.device("cpu")])

    @property
    def fast_repeats(self) -> int:
        """Timed runs of cheap things (post-processing alone, our clustering)."""
        return 3 * self.repeats


def make_settings(quick: bool, repeats: int | None, device: str) -> Settings:
    if quick:
        # The synthetic sizes stay those of the promise (one DBSCAN run at 20k is ~2-3 s); frames and repeats shrink.
        s = Settings(quick=True, repeats=3, warmup=1, frames=2, dbscan_repeats=1)
    else:
        s = Settings()
    if repeats is not None:
        if repeats < 1:
            raise ValueError(f"--repeats must be >= 1, got {repeats}")
        s.repeats = repeats
        s.dbscan_repeats = min(s.dbscan_repeats, repeats)
    s.devices = benchmark_devices(device)
    return s


def benchmark_devices(device: str) -> list[torch.device]:
    """CPU always; plus CUDA for 'auto' when present and for 'cuda' (an error without CUDA)."""
    if device not in ("cpu", "cuda", "auto") and not device.startswith("cuda:"):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or auto, got '{device}'")
    resolved = resolve_device(device)
    return [torch.device("cpu")] + ([resolved] if resolved.type == "cuda" else [])


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Wall-clock ms of each of `repeats` calls of fn after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def time_pair(
    first: Callable[[], object], second: Callable[[], object], repeats: int, warmup: int, device: torch.device
) -> tuple[list[float], list[float]]:
    """time_ms of two functions, their runs interleaved so that both see the same machine load (pair_ratio)."""
    times: tuple[list[float], list[float]] = ([], [])
    for fn in (first, second):
        time_ms(fn, 0, warmup, device)
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            out.extend(time_ms(fn, 1, 0, device))
    return times


def pair_ratio(times: tuple[list[float], list[float]]) -> float:
    """Median over time_pair's back-to-back runs of first / second: steadier than a ratio of medians under load."""
    return median([a / b for a, b in zip(*times)])


def first_subset_only(points: torch.Tensor, bandwidth: float, min_points: int) -> torch.Tensor:
    """Our clustering without re-seeding (the seeds of the first subset only): the re-seeding's baseline."""
    return cluster_embeddings(points, bandwidth, min_points, max_rounds=1)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def fmt_ms(ms: float) -> str:
    if ms != ms:  # NaN
        return "-"
    return f"{ms:.0f}" if ms >= 1000 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[bool] | None = None) -> str:
    """A markdown table with padded columns; `right` marks right-aligned (numeric) columns."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    right = right or [False] * len(headers)

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|"
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def contention_warning() -> str | None:
    """A warning when the 1-minute load average reaches the core count: other work competes for the CPU."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cores = os.cpu_count() or 1
    if load < cores:
        return None
    return (f"WARNING: 1-minute load average {load:.2f} >= {cores} cores: other work is running and the timings "
            f"are contended (torch's multi-threaded ops suffer most; --threads 1 is steadier on a shared machine)")


def machine_header(settings: Settings) -> str:
    gpus = [torch.cuda.get_device_name(d) for d in settings.devices if d.type == "cuda"]
    if not gpus and torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(0) + " (not benchmarked: --device cpu)"]
    import sklearn

    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
        f"Python {platform.python_version()}, GPU: {', '.join(gpus) if gpus else 'none'}\n"
        f"Mode: {'quick (smoke test)' if settings.quick else 'full'}; repeats {settings.repeats} "
        f"(cheap stages {settings.fast_repeats}), warm-up {settings.warmup}, DBSCAN repeats "
        f"{settings.dbscan_repeats}; devices: {', '.join(str(d) for d in settings.devices)}; "
        f"load average at start (1/5/15 min): {load_average()}"
    )


def simplex_centres(count: int, dim: int, spacing: float) -> np.ndarray:
    """`count` points in `dim` dimensions, every pair exactly `spacing` apart (a regular simplex), float64.

    Needs count <= dim + 1; beyond that the centres are put on a line, neighbours `spacing` apart.
    """
    if count > dim + 1:
        centres = np.zeros((count, dim))
        centres[:, 0] = spacing * np.arange(count)
        return centres
    vertices = (np.eye(count) - 1.0 / count) * (spacing / np.sqrt(2.0))  # e_k * s/sqrt2, centred
    # Coordinates in an orthonormal basis of the (count-1)-dim subspace they span, padded to `dim`.
    basis = np.linalg.svd(vertices, full_matrices=False)[2][: max(count - 1, 0)]
    coords = vertices @ basis.T
    out = np.zeros((count, dim))
    out[:, : coords.shape[1]] = coords
    return out


def clipped_gaussian(rng: np.random.Generator, n: int, dim: int, sigma: float, max_norm: float) -> np.ndarray:
    """N(0, sigma^2 I) offsets whose norm is clipped to `max_norm` (scaled back onto that sphere)."""
    noise = rng.normal(0.0, sigma, size=(n, dim))
    norms = np.linalg.norm(noise, axis=1, keepdims=True)
    return noise * np.minimum(1.0, max_norm / np.maximum(norms, 1e-12))


def uniform_ball(rng: np.random.Generator, n: int, dim: int, radius: float) -> np.ndarray:
    """n points uniformly distributed in the `dim`-ball of `radius` around the origin."""
    direction = rng.normal(size=(n, dim))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return direction * (radius * rng.random(n) ** (1.0 / dim))[:, None]


def adjusted_rand(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """ARI of two labelings (noise -1 counts as one more group)."""
    from sklearn.metrics import adjusted_rand_score

    as_np = [x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x) for x in (a, b)]
    return float(adjusted_rand_score(*as_np))


def count_clusters(labels: torch.Tensor | np.ndarray) -> int:
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else labels
    return int(len(np.unique(labels[labels >= 0])))


# --------------------------------------------------------------------------------------------------
# Synthetic frames
# --------------------------------------------------------------------------------------------------


@dataclass
class Frames:
    """Rendered synthetic frames: RGB uint8 [720,1280,3] images and where their tuSimple labels live."""

    root: Path
    images: list[np.ndarray]
    lane_counts: list[int]

    def ground_truth(self, index: int, prep: Preprocessing, lane_thickness: int) -> np.ndarray:
        """Instance ids uint8-like [h,w] of frame `index` drawn at `prep`'s input size (0 = background)."""
        dataset = TuSimpleDataset(self.root, prep, lane_thickness=lane_thickness)
        return dataset[index].instances.numpy()


def render_frames(root: Path, count: int, seed: int = FRAME_SEED) -> Frames:
    """Write `count` synthetic road frames (tuSimple layout) under root and read them back as RGB."""
    label_file = generate_dataset(root, count, seed=seed, name="bench", workers=1)
    dataset = TuSimpleDataset(root, Preprocessing(), label_files=[label_file])
    images, lane_counts = [], []
    for i, record in enumerate(dataset.records):
        bgr = cv2.imread(str(dataset.image_path(i)), cv2.IMREAD_COLOR)
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        lane_counts.append(sum(any(x >= 0 for x in lane) for lane in record.lanes))
    return Frames(root, images, lane_counts)


def lane_thickness_for(prep: Preprocessing) -> int:
    """Training draws lanes 3 px wide at 256x128; scale with the input width, the nearest odd width not above."""
    thickness = max(1, int(3 * prep.input_width / 256))
    return thickness if thickness % 2 else thickness - 1


def realistic_outputs(
    instances: np.ndarray, embed_dim: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """What a well-trained network would output: lane_prob = the ground-truth lane mask; each lane's pixel
    embeddings = its centre (centres 2*delta_dist = 6 apart) + N(0, 0.15) noise clipped to delta_var = 0.5."""
    ids = instances.astype(np.int64)
    lane_count = int(ids.max())
    centres = simplex_centres(max(lane_count, 1), embed_dim, CENTRE_SPACING)
    embedding = np.zeros((embed_dim,) + ids.shape, dtype=np.float32)
    ys, xs = np.nonzero(ids)
    values = centres[ids[ys, xs] - 1] + clipped_gaussian(rng, len(ys), embed_dim, EMBED_NOISE_SIGMA, EMBED_NOISE_MAX)
    embedding[:, ys, xs] = values.T.astype(np.float32)
    return torch.from_numpy((ids > 0).astype(np.float32)), torch.from_numpy(embedding)


# --------------------------------------------------------------------------------------------------
# Section 1: per-stage times of one frame
# --------------------------------------------------------------------------------------------------


@dataclass
class PipelineRow:
    label: str
    device: torch.device
    dtype: str
    prep: Preprocessing
    weights: str
    stages: dict[str, float]  # median ms
    lane_pixels: int
    lanes: int


@dataclass
class RealisticRow:
    label: str
    device: torch.device
    prep: Preprocessing
    thickness: int
    lane_pixels: int
    gt_lanes: int
    lanes: int
    ari: float
    cluster: float
    fit: float

    @property
    def cluster_fit(self) -> float:
        return self.cluster + self.fit


@dataclass
class PipelineResults:
    rows: list[PipelineRow]
    realistic: list[RealisticRow]
    frame_lanes: int


def model_specs() -> list[tuple[str, float, Preprocessing, str]]:
    """(label, width, preprocessing, weights) of the benchmarked models; weights 'random' or a checkpoint path."""
    builtin = load_checkpoint(BUILTIN_CHECKPOINT)
    return [
        ("(a) default SegNet, width 1.0", 1.0, Preprocessing(input_width=512, input_height=256), "random"),
        ("(b) small SegNet, width 0.125", 0.125, Preprocessing(input_width=256, input_height=128), "random"),
        (f"(c) built-in model, width {builtin.model_config.width:g}", builtin.model_config.width,
         builtin.preprocessing, str(BUILTIN_CHECKPOINT)),
    ]


def build_model(width: float, weights: str) -> tuple[SegNet, Preprocessing | None, PostprocessConfig]:
    """A CPU SegNet: seeded random weights, or a checkpoint's (with its own settings)."""
    if weights == "random":
        torch.manual_seed(0)
        return SegNet(width=width).eval(), None, PostprocessConfig()
    checkpoint = load_checkpoint(weights)
    return checkpoint.build_model(), checkpoint.preprocessing, checkpoint.postprocess


def time_detector(detector: LaneDetector, frame: np.ndarray, settings: Settings) -> tuple[dict[str, float], int, int]:
    """Median ms of each stage of `detector(frame)`, the frame's lane pixels and lanes found."""
    warmup = settings.warmup + (2 if detector.device.type == "cuda" else 0)
    for _ in range(warmup):
        detector(frame)
    runs = [detector(frame).timings for _ in range(settings.repeats)]
    stages = {k: median([t[k] for t in runs]) for k in STAGES}
    outputs = detector.network([frame])
    lane_pixels = int((outputs.lane_prob[0] > detector.post.lane_threshold).sum())
    return stages, lane_pixels, len(detector.lanes(outputs)[0].lanes)


def time_realistic(
    label: str, prep: Preprocessing, frames: Frames, post: PostprocessConfig, device: torch.device,
    settings: Settings, embed_dim: int = 5,
) -> RealisticRow:
    """extract_lanes on realistic outputs (ground-truth lanes of frame 0, clean embeddings) at prep's size."""
    thickness = lane_thickness_for(prep)
    instances = frames.ground_truth(0, prep, thickness)
    lane_prob, embedding = realistic_outputs(instances, embed_dim, np.random.default_rng(0))
    lane_prob, embedding = lane_prob.to(device), embedding.to(device)
    height, width = frames.images[0].shape[:2]
    geometry = prep.geometry(width, height)

    def run():
        return extract_lanes(lane_prob, embedding, geometry, (width, height), post)

    warmup = settings.warmup + (2 if device.type == "cuda" else 0)
    for _ in range(warmup):
        run()
    runs = [run() for _ in range(settings.fast_repeats)]
    result = runs[-1]
    lane = instances > 0
    return RealisticRow(
        label, device, prep, thickness, int(lane.sum()), int(instances.max()), len(result.lanes),
        adjusted_rand(instances[lane], result.label_map[lane]),
        median([r.timings["cluster"] for r in runs]), median([r.timings["fit"] for r in runs]),
    )


@torch.inference_mode()
def bench_pipeline(frames: Frames, settings: Settings) -> PipelineResults:
    """Section 1: per-stage median ms of frame 0 through the full detector, and post-processing on realistic outputs."""
    frame = frames.images[0]
    rows, realistic = [], []
    for label, width, prep, weights in model_specs():
        cpu_model_, own_prep, post = build_model(width, weights)
        prep = own_prep or prep
        for device in settings.devices:
            model = cpu_model_ if device.type == "cpu" else copy.deepcopy(cpu_model_).to(device)
            for half in ((False,) if device.type == "cpu" else (False, True)):
                detector = LaneDetector(TorchBackend(model, half=half), prep, post)
                stages, lane_pixels, lanes = time_detector(detector, frame, settings)
                rows.append(PipelineRow(label, device, "float16" if half else "float32", prep,
                                        "random" if weights == "random" else "trained", stages, lane_pixels, lanes))
            if weights == "random":
                realistic.append(time_realistic(label, prep, frames, post, device, settings))
            del model
        if any(d.type == "cuda" for d in settings.devices):
            torch.cuda.empty_cache()
    return PipelineResults(rows, realistic, frames.lane_counts[0])


def report_pipeline(results: PipelineResults, settings: Settings) -> str:
    headers = ["model", "device", "dtype", "input", "weights", "lane px", "lanes"] + [f"{s} ms" for s in STAGES]
    rows = [
        [r.label, r.device.type, r.dtype, f"{r.prep.input_width}x{r.prep.input_height}", r.weights,
         r.lane_pixels, r.lanes] + [fmt_ms(r.stages[s]) for s in STAGES]
        for r in results.rows
    ]
    right = [False] * 5 + [True] * (2 + len(STAGES))
    real_headers = ["outputs at the input size of", "device", "input", "lane thickness", "lane px", "GT lanes",
                    "lanes found", "ARI vs GT", "cluster ms", "fit ms", "cluster+fit ms"]
    real_rows = [
        [r.label, r.device.type, f"{r.prep.input_width}x{r.prep.input_height}", r.thickness, r.lane_pixels,
         r.gt_lanes, r.lanes, f"{r.ari:.3f}", fmt_ms(r.cluster), fmt_ms(r.fit), fmt_ms(r.cluster_fit)]
        for r in results.realistic
    ]
    return "\n".join([
        "## 1. Per-stage time of one 1280x720 frame (median ms)",
        "",
        f"One synthetic 1280x720 road frame (seed {FRAME_SEED}, frame 0, {results.frame_lanes} lanes) through "
        f"the full detector (`LaneDetector.__call__`); median of {settings.repeats} runs after "
        f"{settings.warmup} warm-up runs. `lane px`: pixels above the lane threshold; `lanes`: lanes found.",
        "",
        md_table(headers, rows, right),
        "",
        "Random-weight rows: the forward time does not depend on the weights, so (a) and (b) time the real "
        "network cost; their cluster/fit times do depend on the outputs, and random weights give meaningless "
        "ones (see their `lane px`), so those are not representative: the next table times post-processing on "
        "realistic outputs at the same input sizes. Row (c) is the trained model on its real outputs.",
        "",
        "### Post-processing on realistic outputs",
        "",
        f"`extract_lanes` on what a trained network outputs: lane_prob = the frame's ground-truth lane mask drawn "
        f"at the model's input size (TuSimpleDataset, 3 px at 256x128, scaled), embeddings = one centre per lane "
        f"(centres {CENTRE_SPACING:g} apart) + Gaussian noise sigma {EMBED_NOISE_SIGMA} clipped to norm "
        f"{EMBED_NOISE_MAX}; default PostprocessConfig (bandwidth 1.0); median of {settings.fast_repeats} runs. "
        "`ARI vs GT`: the label map against the ground-truth instances on the lane pixels.",
        "",
        md_table(real_headers, real_rows, [False] * 3 + [True] * 8),
    ])


@dataclass
class BuiltinPostRow:
    """Cluster + fit of the built-in model's own outputs on every benchmark frame (1280x720), on one device."""

    device: torch.device
    frames: int
    runs: int  # timed runs per frame
    lane_pixels: int  # median over the frames
    lanes: int  # median over the frames
    cluster: float  # median ms over every frame and run
    fit: float
    cluster_fit: float  # median of each run's cluster + fit
    forward: float  # median ms of the built-in model's forward (section 1's row (c) on this device)

    @property
    def passed(self) -> bool:
        return self.cluster_fit <= BUILTIN_POST_LIMIT_MS


@torch.inference_mode()
def bench_builtin_postprocess(frames: Frames, settings: Settings, pipeline: PipelineResults) -> list[BuiltinPostRow]:
    """Section 1: `LaneDetector.lanes` (cluster, fit) on the built-in model's outputs of every frame, per device.

    The baseline is the built-in model's forward in this process (section 1's row (c), as the detector runs).
    """
    rows = []
    for device in settings.devices:
        detector = LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device=str(device))
        outputs = [detector.network([image]) for image in frames.images]
        for out in outputs:  # warm-up
            detector.lanes(out)
        timings = []
        for _ in range(settings.fast_repeats):  # frames interleaved: each repeat sees every frame
            timings += [detector.lanes(out)[0].timings for out in outputs]
        pixels = [int((out.lane_prob[0] > detector.post.lane_threshold).sum()) for out in outputs]
        lanes = [len(detector.lanes(out)[0].lanes) for out in outputs]
        dtype = "float16" if device.type == "cuda" else "float32"
        forward = next(r.stages["forward"] for r in pipeline.rows
                       if r.weights == "trained" and r.device == device and r.dtype == dtype)
        rows.append(BuiltinPostRow(
            device, len(outputs), settings.fast_repeats, int(median(pixels)), int(median(lanes)),
            median([t["cluster"] for t in timings]), median([t["fit"] for t in timings]),
            median([t["cluster"] + t["fit"] for t in timings]), forward,
        ))
    return rows


def report_builtin_postprocess(rows: list[BuiltinPostRow], frames: Frames) -> str:
    headers = ["device", "frames", "runs each", "lane px (median)", "lanes (median)", "cluster ms", "fit ms",
               "cluster+fit ms", "forward ms", "cluster+fit / forward"]
    table = [[r.device.type, r.frames, r.runs, r.lane_pixels, r.lanes, fmt_ms(r.cluster), fmt_ms(r.fit),
              fmt_ms(r.cluster_fit), fmt_ms(r.forward), f"{100 * r.cluster_fit / r.forward:.1f}%"] for r in rows]
    lines = [
        "### Post-processing of the built-in model's outputs at 720p",
        "",
        f"`LaneDetector.lanes` (cluster = lane pixels, clustering, copy to the CPU; fit = fragments, polylines) on "
        f"the built-in model's own outputs of the {len(frames.images)} synthetic 1280x720 frames (seed "
        f"{FRAME_SEED}), each frame's outputs computed once and post-processed repeatedly, frames interleaved; "
        "medians over every frame and run. `forward ms`: the model's forward in this process (row (c) above, "
        "float16 on CUDA as the detector runs), the frame time that post-processing adds to.",
        "",
        md_table(headers, table, [False] + [True] * (len(headers) - 1)),
        "",
    ]
    for r in rows:
        if r.device.type == "cpu":
            lines.append(f"Built-in model cluster+fit at 720p (CPU): {fmt_ms(r.cluster_fit)} ms <= "
                         f"{BUILTIN_POST_LIMIT_MS:g} ms: {verdict(r.passed)}")
        else:
            lines.append(f"- for information: built-in model cluster+fit at 720p ({r.device.type}): "
                         f"{fmt_ms(r.cluster_fit)} ms")
    return "\n".join(lines)


@dataclass
class LayoutRow:
    label: str
    prep: Preprocessing
    nchw_ms: float
    channels_last_ms: float
    speedup: float  # pair_ratio: NCHW / channels-last over back-to-back runs


@torch.inference_mode()
def bench_memory_layout(settings: Settings) -> list[LayoutRow]:
    """Section 1b: the CPU forward of one frame in NCHW against channels-last (what TorchBackend runs on the CPU)."""
    cpu = torch.device("cpu")
    rows = []
    small = Preprocessing(input_width=256, input_height=128)
    specs = [(label, width, prep) for label, width, prep, weights in model_specs() if weights == "random"]
    specs += [("small SegNet, width 0.1875", 0.1875, small), ("small SegNet, width 0.25", 0.25, small)]
    for label, width, prep in specs:  # random weights: they do not change the forward time
        nchw, _, _ = build_model(width, "random")
        last = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
        batch = torch.rand(1, 3, prep.input_height, prep.input_width)
        batch_last = batch.contiguous(memory_format=torch.channels_last)
        times = time_pair(lambda: nchw(batch), lambda: last(batch_last), settings.repeats, settings.warmup, cpu)
        rows.append(LayoutRow(label, prep, median(times[0]), median(times[1]), pair_ratio(times)))
    return rows


def report_memory_layout(rows: list[LayoutRow], settings: Settings) -> str:
    table = md_table(
        ["model", "input", "NCHW ms", "channels-last ms", "speed-up"],
        [[r.label, f"{r.prep.input_width}x{r.prep.input_height}", fmt_ms(r.nchw_ms), fmt_ms(r.channels_last_ms),
          f"{r.speedup:.2f}x"] for r in rows],
        [False, False, True, True, True],
    )
    passed = all(r.speedup >= 1.0 for r in rows)
    return "\n".join([
        "### CPU forward: NCHW vs channels-last, by width",
        "",
        f"The SegNet forward of one frame in each memory layout, back to back ({settings.repeats} pairs after "
        f"{settings.warmup} warm-up runs each); the detector and the trainer run channels-last on the CPU. "
        "The wider small models are what `lane-seg widen` makes of the built-in one.",
        "",
        table,
        "",
        f"channels-last at least as fast as NCHW on this CPU: {verdict(passed)}",
    ])


# --------------------------------------------------------------------------------------------------
# Section 2: the post-processing budget
# --------------------------------------------------------------------------------------------------


@dataclass
class RatioResult:
    cluster_fit_ms: float
    forward_ms: float

    @property
    def ratio(self) -> float:
        return self.cluster_fit_ms / self.forward_ms

    @property
    def passed(self) -> bool:
        return self.ratio <= RATIO_LIMIT


def postprocess_ratio(results: PipelineResults) -> RatioResult:
    """Section 2: realistic cluster+fit at 512x256 over the default SegNet's CPU float32 forward at 512x256."""
    forward = next(r for r in results.rows if r.device.type == "cpu" and r.prep.input_width == 512
                   and r.weights == "random" and r.dtype == "float32")
    post = next(r for r in results.realistic if r.device.type == "cpu" and r.prep.input_width == 512)
    return RatioResult(post.cluster_fit, forward.stages["forward"])


def report_ratio(ratio: RatioResult, results: PipelineResults) -> str:
    info = []
    for row in results.rows:  # the same share for the other CPU rows, for information only
        if row.device.type != "cpu" or row.prep.input_width == 512:
            continue
        if row.weights == "trained":
            post = row.stages["cluster"] + row.stages["fit"]
            what = "its real outputs"
        else:
            post = next(r.cluster_fit for r in results.realistic if r.device.type == "cpu" and r.prep == row.prep)
            what = "realistic outputs"
        info.append(f"- for information (not a promise): {row.label} on CPU: cluster+fit on {what} "
                    f"{fmt_ms(post)} ms / forward {fmt_ms(row.stages['forward'])} ms = "
                    f"{100 * post / row.stages['forward']:.1f}%")
    return "\n".join([
        "## 2. Post-processing budget",
        "",
        f"(cluster + fit on realistic outputs at 512x256) / (default SegNet CPU float32 forward at 512x256) = "
        f"{fmt_ms(ratio.cluster_fit_ms)} ms / {fmt_ms(ratio.forward_ms)} ms = {100 * ratio.ratio:.2f}%",
        f"Post-processing ratio: {100 * ratio.ratio:.2f}% <= {100 * RATIO_LIMIT:.0f}%: {verdict(ratio.passed)}",
        "",
        *info,
    ])


# --------------------------------------------------------------------------------------------------
# Section 3: our clustering vs sklearn DBSCAN
# --------------------------------------------------------------------------------------------------


@dataclass
class SyntheticRow:
    points: int
    ours_ms: float
    dbscan_ms: float
    ours_cuda_ms: float | None
    ari_ours_truth: float
    ari_dbscan_truth: float
    ari_ours_dbscan: float
    ours_clusters: int
    dbscan_clusters: int
    first_ms: float  # ours without re-seeding, timed interleaved with ours
    reseed_extra: float  # ours / first subset only - 1 (pair_ratio)

    @property
    def speedup(self) -> float:
        return self.dbscan_ms / self.ours_ms


@dataclass
class RealRow:
    frame: int
    points: int
    ours_ms: float
    dbscan_ms: float
    ari: float
    ours_clusters: int
    dbscan_clusters: int
    first_ms: float  # ours without re-seeding, timed interleaved with ours
    reseed_extra: float  # ours / first subset only - 1 (pair_ratio)


@dataclass
class SmallLaneResult:
    orders: int
    lost_first: int  # pixel orders in which the first subset alone loses a lane
    lost_ours: int
    first_ms: float  # medians over the orders
    ours_ms: float

    @property
    def passed(self) -> bool:
        return self.lost_ours == 0


def synthetic_clusters(n: int, dim: int = 5, clusters: int = 5, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """n float32 points in `clusters` equal groups, shuffled: centres 2*delta_dist = 6 apart (a regular simplex),
    points uniform within delta_var = 0.5 of their centre; (points [n,dim], true labels [n])."""
    rng = np.random.default_rng(seed)
    truth = rng.permutation(np.arange(n) % clusters)
    centres = simplex_centres(clusters, dim, CENTRE_SPACING)
    points = centres[truth] + uniform_ball(rng, n, dim, DELTA_VAR)
    return torch.from_numpy(points.astype(np.float32)), truth


@torch.inference_mode()
def bench_synthetic_clustering(settings: Settings) -> list[SyntheticRow]:
    """Section 3 (i): cluster_embeddings(bandwidth 1.0) vs sklearn DBSCAN(eps 0.5), min_points 10."""
    cpu = torch.device("cpu")
    cuda = next((d for d in settings.devices if d.type == "cuda"), None)
    bandwidth, eps, min_points = 2 * DELTA_VAR, DELTA_VAR, 10
    cluster_dbscan(torch.zeros(20, 5), eps, min_points)  # import sklearn before timing
    rows = []
    for n in settings.synthetic_sizes:
        points, truth = synthetic_clusters(n)
        ours = cluster_embeddings(points, bandwidth, min_points)
        pair = time_pair(lambda: cluster_embeddings(points, bandwidth, min_points),
                         lambda: first_subset_only(points, bandwidth, min_points), settings.fast_repeats,
                         settings.warmup, cpu)
        ours_ms, first_ms = map(median, pair)
        dbscan = cluster_dbscan(points, eps, min_points)
        dbscan_ms = median(time_ms(lambda: cluster_dbscan(points, eps, min_points), settings.dbscan_repeats, 0, cpu))
        cuda_ms = None
        if cuda is not None:
            on_gpu = points.to(cuda)
            cuda_ms = median(time_ms(lambda: cluster_embeddings(on_gpu, bandwidth, min_points),
                                     settings.fast_repeats, settings.warmup + 2, cuda))
        rows.append(SyntheticRow(n, ours_ms, dbscan_ms, cuda_ms, adjusted_rand(ours, truth),
                                 adjusted_rand(dbscan, truth), adjusted_rand(ours, dbscan),
                                 count_clusters(ours), count_clusters(dbscan), first_ms, pair_ratio(pair) - 1.0))
    return rows


@torch.inference_mode()
def bench_real_clustering(frames: Frames, settings: Settings) -> tuple[list[RealRow], PostprocessConfig]:
    """Section 3 (ii): the built-in model's lane-pixel embeddings (CPU) on each synthetic frame."""
    cpu = torch.device("cpu")
    detector = LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cpu")
    post = detector.post
    bandwidth, eps, min_points = post.bandwidth, post.bandwidth / 2, post.min_pixels  # as extract_lanes does
    rows = []
    for i, image in enumerate(frames.images):
        outputs = detector.network([image])
        lane = outputs.lane_prob[0] > post.lane_threshold
        points = outputs.embedding[0][:, lane].T.contiguous()
        ours = cluster_embeddings(points, bandwidth, min_points)
        dbscan = cluster_dbscan(points, eps, min_points)
        pair = time_pair(lambda: cluster_embeddings(points, bandwidth, min_points),
                         lambda: first_subset_only(points, bandwidth, min_points), settings.fast_repeats,
                         settings.warmup, cpu)
        ours_ms, first_ms = map(median, pair)
        dbscan_ms = median(time_ms(lambda: cluster_dbscan(points, eps, min_points), settings.repeats, 1, cpu))
        rows.append(RealRow(i, points.shape[0], ours_ms, dbscan_ms, adjusted_rand(ours, dbscan),
                            count_clusters(ours), count_clusters(dbscan), first_ms, pair_ratio(pair) - 1.0))
    return rows, post


def small_lane_points(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """SMALL_LANE_SIZES points around centres SMALL_LANE_SPACING apart, uniform within delta_var; (points, truth)."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(SMALL_LANE_SIZES)), SMALL_LANE_SIZES)
    centres = simplex_centres(len(SMALL_LANE_SIZES), 5, SMALL_LANE_SPACING)
    points = centres[truth] + uniform_ball(rng, len(truth), 5, DELTA_VAR)
    return torch.from_numpy(points.astype(np.float32)), truth


@torch.inference_mode()
def bench_small_lane(settings: Settings) -> SmallLaneResult:
    """Section 3 (iii): the 40-point lane in `small_lane_orders` pixel orders, with and without re-seeding."""
    cpu = torch.device("cpu")
    points, truth = small_lane_points()
    bandwidth, min_points = 2 * DELTA_VAR, 10
    lost, times = [0, 0], ([], [])
    for seed in range(settings.small_lane_orders):
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(truth)))
        shuffled, shuffled_truth = points[order], truth[order.numpy()]
        variants = (lambda: first_subset_only(shuffled, bandwidth, min_points),
                    lambda: cluster_embeddings(shuffled, bandwidth, min_points))
        for i, run in enumerate(variants):
            labels = run()
            lost[i] += bool((labels < 0).any()) or adjusted_rand(labels, shuffled_truth) < 1.0
        first, ours = time_pair(*variants, 1, 1 if seed == 0 else 0, cpu)
        times[0].extend(first)
        times[1].extend(ours)
    return SmallLaneResult(settings.small_lane_orders, lost[0], lost[1], median(times[0]), median(times[1]))


def reseed_extra(synthetic: list[SyntheticRow], real: list[RealRow]) -> float:
    """The re-seeding's extra cost: the worst of the synthetic sizes and of the real frames' median."""
    extras = [r.reseed_extra for r in synthetic]
    if real:
        extras.append(median([r.reseed_extra for r in real]))
    return max(extras)


def report_clustering(synthetic: list[SyntheticRow], real: list[RealRow], post: PostprocessConfig,
                      small: SmallLaneResult, settings: Settings) -> str:
    has_cuda = any(r.ours_cuda_ms is not None for r in synthetic)
    headers = ["points", "ours ms (CPU)"] + (["ours ms (CUDA)"] if has_cuda else []) + [
        "DBSCAN ms", "speed-up", "ARI ours vs truth", "ARI DBSCAN vs truth", "ARI ours vs DBSCAN",
        "clusters ours / DBSCAN", "first subset only ms", "re-seeding extra"]
    rows = [
        [f"{r.points:,}", fmt_ms(r.ours_ms)] + ([fmt_ms(r.ours_cuda_ms or float("nan"))] if has_cuda else []) + [
            fmt_ms(r.dbscan_ms), f"{r.speedup:.0f}x", f"{r.ari_ours_truth:.4f}", f"{r.ari_dbscan_truth:.4f}",
            f"{r.ari_ours_dbscan:.4f}", f"{r.ours_clusters} / {r.dbscan_clusters}", fmt_ms(r.first_ms),
            f"{100 * r.reseed_extra:+.1f}%"]
        for r in synthetic
    ]
    largest = max(synthetic, key=lambda r: r.points)
    worst_ari = min(r.ari_ours_truth for r in synthetic)
    real_headers = ["frame", "lane px", "ours ms", "DBSCAN ms", "speed-up", "ARI ours vs DBSCAN",
                    "clusters ours / DBSCAN", "first subset only ms", "re-seeding extra"]
    real_rows = [[r.frame, r.points, fmt_ms(r.ours_ms), fmt_ms(r.dbscan_ms), f"{r.dbscan_ms / r.ours_ms:.1f}x",
                  f"{r.ari:.4f}", f"{r.ours_clusters} / {r.dbscan_clusters}", fmt_ms(r.first_ms),
                  f"{100 * r.reseed_extra:+.1f}%"] for r in real]
    if real:
        real_rows.append(["median", int(median([r.points for r in real])), fmt_ms(median([r.ours_ms for r in real])),
                          fmt_ms(median([r.dbscan_ms for r in real])),
                          f"{median([r.dbscan_ms / r.ours_ms for r in real]):.1f}x",
                          f"{median([r.ari for r in real]):.4f}", "", fmt_ms(median([r.first_ms for r in real])),
                          f"{100 * median([r.reseed_extra for r in real]):+.1f}%"])
    extra = reseed_extra(synthetic, real)
    return "\n".join([
        "## 3. Clustering: ours (torch greedy mean shift) vs sklearn DBSCAN",
        "",
        "### (i) Synthetic embeddings",
        "",
        f"5-dim points in 5 equal clusters (shuffled, seed 0): centres {CENTRE_SPACING:g} apart (2*delta_dist, "
        f"a regular simplex), points uniform in the 5-ball of radius delta_var = {DELTA_VAR} around their centre. "
        f"`cluster_embeddings(bandwidth={2 * DELTA_VAR:g}, min_points=10)` vs `cluster_dbscan(eps={DELTA_VAR:g}, "
        f"min_points=10)` (sklearn DBSCAN), both on the CPU. Median of {settings.fast_repeats} runs for ours, "
        f"{settings.dbscan_repeats} for DBSCAN (it takes seconds per run at 20,000 points). ARI counts noise (-1) "
        f"as one more group.",
        "",
        md_table(headers, rows, [True] * len(headers)),
        "",
        f"Clustering speed-up at {largest.points:,} points: {largest.speedup:.0f}x >= {SPEEDUP_LIMIT:.0f}x: "
        f"{verdict(largest.speedup >= SPEEDUP_LIMIT)}",
        f"Clustering ARI ours vs truth (worst over sizes): {worst_ari:.4f} >= {ARI_LIMIT}: "
        f"{verdict(worst_ari >= ARI_LIMIT)}",
        "",
        "### (ii) Real embeddings of the built-in model",
        "",
        f"Pixels above the lane threshold ({post.lane_threshold:g}) of the built-in model (256x128, CPU) on "
        f"{len(real)} synthetic frames (seed {FRAME_SEED}); the pipeline's settings: bandwidth {post.bandwidth:g} "
        f"for ours, eps {post.bandwidth / 2:g} for DBSCAN, min_points {post.min_pixels}. Median of "
        f"{settings.fast_repeats} runs for ours, {settings.repeats} for DBSCAN.",
        "",
        md_table(real_headers, real_rows, [True] * len(real_headers)),
        "",
        "### (iii) Re-seeding",
        "",
        "A lane none of whose points is in the first subset of `max_seed_points` (512) gets no centre from it; "
        "ours searches the points that no centre holds and no sampled point stands for again. `first subset "
        "only ms` above is ours without that (`max_rounds=1`), timed interleaved with ours; `re-seeding extra` "
        "is the median of the back-to-back runs' ratios, and the verdict takes the worst of the synthetic sizes "
        "and the real frames' median. The small lane: "
        f"{len(SMALL_LANE_SIZES) - 1} lanes of {SMALL_LANE_SIZES[0]:,} points and one of {SMALL_LANE_SIZES[-1]} "
        f"(centres {SMALL_LANE_SPACING:g} apart, uniform within {DELTA_VAR}; bandwidth {2 * DELTA_VAR:g}, "
        f"min_points 10) in {small.orders} random pixel orders; lost: an order whose labels are not exactly the "
        "5 lanes (every point is within its lane's bandwidth, so none may be noise).",
        "",
        md_table(["points", "pixel orders", "lost, first subset only", "lost, ours", "first subset only ms",
                  "ours ms"],
                 [[f"{sum(SMALL_LANE_SIZES):,}", small.orders, small.lost_first, small.lost_ours,
                   fmt_ms(small.first_ms), fmt_ms(small.ours_ms)]], [True] * 6),
        "",
        f"Re-seeding extra cost (worst of the synthetic sizes and the real frames' median): {100 * extra:+.1f}% <= "
        f"{100 * RESEED_LIMIT:.0f}%: {verdict(extra <= RESEED_LIMIT)}",
        f"Small lane found in {small.orders - small.lost_ours} of {small.orders} pixel orders (first subset only: "
        f"{small.orders - small.lost_first} of {small.orders}): {verdict(small.passed)}",
    ])


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke test: fewer repeats, smaller sizes (< ~1 min)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (CPU is always benchmarked; default auto)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs of a full detector call (default 10, quick 3; cheap stages 3x as many)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's own choice, printed in the header)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a promise FAILs (default: report only)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = make_settings(args.quick, args.repeats, args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        if args.threads < 1:
            print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print(machine_header(settings), flush=True)
    if warning := contention_warning():
        print(warning)
    print()
    with tempfile.TemporaryDirectory(prefix="lane_seg_bench_") as tmp:
        frames = render_frames(Path(tmp), settings.frames)
        pipeline = bench_pipeline(frames, settings)
        builtin = bench_builtin_postprocess(frames, settings, pipeline)
        print(report_pipeline(pipeline, settings), end="\n\n")
        print(report_memory_layout(bench_memory_layout(settings), settings), end="\n\n", flush=True)
        print(report_builtin_postprocess(builtin, frames), end="\n\n", flush=True)
        ratio = postprocess_ratio(pipeline)
        print(report_ratio(ratio, pipeline), end="\n\n", flush=True)
        synthetic = bench_synthetic_clustering(settings)
        real, post = bench_real_clustering(frames, settings)
        small = bench_small_lane(settings)
    print(report_clustering(synthetic, real, post, small, settings), end="\n\n")
    largest = max(synthetic, key=lambda r: r.points)
    passed = (ratio.passed and largest.speedup >= SPEEDUP_LIMIT
              and min(r.ari_ours_truth for r in synthetic) >= ARI_LIMIT
              and all(r.passed for r in builtin if r.device.type == "cpu") and small.passed
              and reseed_extra(synthetic, real) <= RESEED_LIMIT)
    print(f"Finished in {time.perf_counter() - start:.0f} s; load average at the end (1/5/15 min): {load_average()}")
    if warning := contention_warning():
        print(warning)
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
