"""The pipeline benchmark runs end to end and reports every section (timings themselves are not tested)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lane_seg_core.builtin import BUILTIN_CHECKPOINT
from lane_seg_core.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_benchmark_prints_every_section_and_its_verdicts():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "pipeline.py"), "--quick", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout

    assert re.search(r"^Machine: .+ torch \S+ with \d+ threads.*GPU: none$", out, re.M), out[:500]
    for heading in ("## 1. Per-stage time of one 1280x720 frame", "### Post-processing on realistic outputs",
                    "### Post-processing of the built-in model's outputs at 720p",
                    "## 2. Post-processing budget", "## 3. Clustering", "### (i) Synthetic embeddings",
                    "### (ii) Real embeddings of the built-in model", "### (iii) Re-seeding"):
        assert heading in out, heading
    # table headers of each section
    assert re.search(r"^\| model +\| device .*\| preprocess ms \| forward ms \| cluster ms \| fit ms \| mask ms "
                     r"\| total ms \|$", out, re.M)
    assert re.search(r"^\| outputs at the input size of .*\| cluster\+fit ms \|$", out, re.M)
    assert re.search(r"^\| +points \| ours ms \(CPU\) \| DBSCAN ms \| speed-up \| ARI ours vs truth \|", out, re.M)
    assert re.search(r"^\| +frame \| lane px \| ours ms \| DBSCAN ms \|.*\| first subset only ms \| re-seeding extra \|$",
                     out, re.M)
    assert re.search(r"^\| device \| frames \| runs each \| lane px \(median\) \| lanes \(median\) \| cluster ms \| fit ms "
                     r"\| cluster\+fit ms \| forward ms \| cluster\+fit / forward \|$", out, re.M)
    # the built-in model's post-processing: both quick-mode frames, and it finds their lanes
    builtin = re.search(r"^\| cpu +\| +2 \| +\d+ \| +(\d+) \| +(\d) \|", out, re.M)
    assert builtin and int(builtin.group(1)) > 500 and int(builtin.group(2)) >= 3, out[:3000]
    # one row per model on the CPU (float32 only), and realistic post-processing for both input sizes
    builtin_width = load_checkpoint(BUILTIN_CHECKPOINT).model_config.width
    for label in ("(a) default SegNet, width 1.0", "(b) small SegNet, width 0.125",
                  f"(c) built-in model, width {builtin_width:g}"):
        assert re.search(rf"^\| {re.escape(label)} +\| cpu +\| float32 ", out, re.M), label
    assert re.search(r"^\| \(a\) .*\| cpu +\| 512x256 \| +5 \|", out, re.M)
    assert re.search(r"^\| \(b\) .*\| cpu +\| 256x128 \| +3 \|", out, re.M)
    for width in ("0.125", "0.1875", "0.25"):  # the forward in both layouts, by width
        assert re.search(rf"^\| .*width {width} +\| 256x128 \| +[\d.]+ \| +[\d.]+ \| +\d+\.\d\dx \|$", out, re.M), width
    assert re.search(r"^channels-last at least as fast as NCHW on this CPU: (PASS|FAIL)$", out, re.M)

    # the verdict lines (PASS or FAIL: timings vary with the machine and its load)
    assert re.search(r"^Post-processing ratio: \d+\.\d\d% <= 10%: (PASS|FAIL)$", out, re.M)
    assert re.search(r"^Clustering speed-up at 20,000 points: \d+x >= 50x: (PASS|FAIL)$", out, re.M)
    assert re.search(r"^Built-in model cluster\+fit at 720p \(CPU\): \d+(\.\d+)? ms <= 3 ms: (PASS|FAIL)$", out, re.M)
    assert re.search(r"^Re-seeding extra cost \(worst of the synthetic sizes and the real frames' median\): "
                     r"[+-]\d+\.\d% <= 10%: (PASS|FAIL)$", out, re.M)
    # the small lane is deterministic: re-seeding finds it in every order, the first subset alone does not
    small = re.search(r"^Small lane found in (\d+) of 50 pixel orders \(first subset only: (\d+) of 50\): (PASS|FAIL)$",
                      out, re.M)
    assert small and small.group(1) == "50" and int(small.group(2)) < 50 and small.group(3) == "PASS", out[-3000:]
    # ...but the clustering's quality on the synthetic clusters is deterministic: it must pass
    ari = re.search(r"^Clustering ARI ours vs truth \(worst over sizes\): (\d\.\d{4}) >= 0\.99: (PASS|FAIL)$", out, re.M)
    assert ari and float(ari.group(1)) >= 0.99 and ari.group(2) == "PASS", out[-3000:]
    rows = re.findall(r"^\| +([\d,]+) \|(?:[^|]+\|){3} +(\d\.\d{4}) \|", out, re.M)
    assert [n for n, _ in rows] == ["8,000", "20,000"] and all(float(a) >= 0.99 for _, a in rows), rows
    # the realistic outputs are clustered exactly into the ground-truth lanes
    realistic = re.findall(r"^\| \([ab]\) .*\| +(\d) \| +(\d) \| +(\d\.\d{3}) \|", out, re.M)
    assert len(realistic) == 2 and all(gt == found and float(a) >= 0.99 for gt, found, a in realistic), realistic
    assert re.search(r"^Finished in \d+ s", out, re.M)
