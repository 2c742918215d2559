"""benchmarks/fine_tune.py: the built-in model fine-tuned with --init on frames of another camera, scored before
and after on the same held-out frames of that camera."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from lane_seg_core.builtin import BUILTIN_CHECKPOINT
from lane_seg_core.checkpoint import load_checkpoint
from lane_seg_core.synth import H_SAMPLES
from lane_seg_core.tusimple import read_records

REPO = Path(__file__).resolve().parent.parent
ROW = r"{} +(\d\.\d{{3}}) +(\d\.\d{{3}}) +(\d\.\d{{3}})$"


def test_fine_tune_scores_the_model_before_and_after_on_the_new_cameras_frames(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "fine_tune.py"), "--frames", "8", "--val-frames", "2",
         "--steps", "2", "--camera", "760", "2.4", "320", "--out", str(tmp_path), "--device", "cpu",
         "--workers", "1"],
        capture_output=True, text=True, timeout=300, cwd=REPO, start_new_session=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "camera focal 760 px, height 2.4 m, horizon row 320" in out
    before = re.search(ROW.format(re.escape("before (--init model)")), out, re.M)
    after = re.search(ROW.format("after fine-tuning"), out, re.M)
    assert before and after, out
    assert re.search(r"fine-tuned on 8 frames for 2 steps", out)
    tuned, builtin = load_checkpoint(tmp_path / "run" / "best.pt"), load_checkpoint(BUILTIN_CHECKPOINT)
    assert tuned.train_args["init"] == str(BUILTIN_CHECKPOINT)
    assert tuned.model_config == builtin.model_config and tuned.preprocessing == builtin.preprocessing
    # the frames are the requested camera's: its horizon sits near row 320, so no lane is labelled above it
    records = list(read_records(tmp_path / "val" / "label_data_camera.json"))
    highest = min(y for r in records for lane in r.lanes for x, y in zip(lane, H_SAMPLES) if x >= 0)
    assert 320 < highest < 420


def test_fine_tune_refuses_too_few_frames(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "fine_tune.py"), "--frames", "4", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert result.returncode == 2 and "--frames must be >= 8" in result.stderr
