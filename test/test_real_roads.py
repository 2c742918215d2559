"""benchmarks/real_roads.py scores real labelled frames with the official metric and draws every real frame.

The real frames live in ../shared/data/real/, outside the repository: without them these tests skip.
"""

import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from lane_seg_core.tusimple import read_records

REPO = Path(__file__).resolve().parent.parent
REAL = REPO.parent / "shared" / "data" / "real"
SCRIPT = REPO / "benchmarks" / "real_roads.py"
IMAGES = (".jpg", ".jpeg", ".png")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason=f"no real frames at {REAL} (not part of the repository)")
def test_real_val_is_scored_frame_by_frame_and_every_real_frame_gets_an_overlay(tmp_path):
    result = run("--out", str(tmp_path), "--video-frames", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout

    labels = [r for f in sorted((REAL / "tusimple-0601-val").glob("*.json")) for r in read_records(f)]
    rows = re.findall(r"^\| (\S+) \| (\d\.\d{3}) \| (\d\.\d{3}) \| (\d\.\d{3}) \| (\d+) / (\d+) \|$", out, re.M)
    assert [r[0] for r in rows] == [r.raw_file for r in labels]
    assert [int(r[5]) for r in rows] == [len(r.lanes) for r in labels]
    total = re.search(r"^tuSimple Accuracy=(\d\.\d{3}) FP=(\d\.\d{3}) FN=(\d\.\d{3}) F1=", out, re.M)
    assert total, out
    for column, figure in zip((1, 2, 3), map(float, total.groups())):  # the dataset's figure: the frames' mean
        assert abs(sum(float(r[column]) for r in rows) / len(rows) - figure) <= 0.001, (column, out)
    for target in (r"Accuracy \d\.\d{3} >= 0\.95", r"FP \d\.\d{3} <= 0\.1", r"FN \d\.\d{3} <= 0\.05"):
        assert re.search(rf"^{target}: (PASS|FAIL)$", out, re.M), target

    assert len(list((tmp_path / "val").glob("*.jpg"))) == len(labels)
    for camera in sorted(p for p in (REAL / "unlabelled").iterdir() if p.is_dir()):
        images = [f for f in camera.rglob("*") if f.suffix.lower() in IMAGES]
        if images:
            assert len(list((tmp_path / camera.name / "overlays").rglob("*.jpg"))) == len(images), camera.name
            assert re.search(rf"^{camera.name} +{len(images)} frames: lanes per frame mean [\d.]+ ", out, re.M)
    video = cv2.VideoCapture(str(tmp_path / "video" / "solidWhiteRight_lanes.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert re.search(r"^video solidWhiteRight\.mp4 +4 frames: ", out, re.M)
    assert cv2.imread(str(tmp_path / "contact_sheet.jpg")).shape[1] == 4 * 480


def test_without_the_real_frames_it_says_where_it_looked(tmp_path):
    result = run("--real", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"no real frames at {tmp_path / 'nowhere'}" in result.stderr and "tusimple-0601-val/" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not REAL.is_dir(), reason=f"no real frames at {REAL} (not part of the repository)")
def test_a_missing_checkpoint_or_bad_thread_count_is_named(tmp_path):
    result = run("--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "none.pt" in result.stderr and "Traceback" not in result.stderr, result.stderr
    result = run("--threads", "-1", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "threads must be an integer in [0, 256]" in result.stderr, result.stderr
