"""`lane-seg predict`: images, folders and videos in; overlays and tuSimple predictions out (built-in model, CPU)."""

import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from lane_seg_core.cli import BUILTIN_CHECKPOINT
from lane_seg_core.evaluate import load_ground_truth, read_rgb
from lane_seg_core.inference import LaneDetector
from lane_seg_core.metrics import score_records
from lane_seg_core.predict import PredictSummary, predict_path, sample_rows
from lane_seg_core.synth import generate_dataset
from lane_seg_core.tusimple import ABSENT, H_SAMPLES, read_records
from lane_seg_core.visualize import draw_detection, draw_lanes, lane_colour

import processes

REPO = Path(__file__).resolve().parent.parent
FRAMES = 7


@pytest.fixture(scope="module")
def detector() -> LaneDetector:
    return LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, FRAMES, seed=515_151)
    return root


@pytest.fixture(scope="module")
def frame_paths(dataset) -> list[Path]:
    return sorted(dataset.rglob("*.jpg"))


@pytest.fixture(scope="module")
def folder_run(detector, dataset, tmp_path_factory) -> tuple[PredictSummary, Path]:
    out = tmp_path_factory.mktemp("folder_out")
    return predict_path(detector, dataset, out, batch_size=3, progress=False), out


def test_folder_writes_mirrored_overlays_and_one_record_per_frame(folder_run, dataset, frame_paths):
    summary, out = folder_run
    rel = [p.relative_to(dataset).as_posix() for p in frame_paths]
    assert len(rel) == FRAMES and all(r.startswith("clips/") for r in rel)
    assert sorted(p.relative_to(out / "overlays").as_posix() for p in (out / "overlays").rglob("*.jpg")) == rel
    for r in rel:
        assert cv2.imread(str(out / "overlays" / r)).shape == (720, 1280, 3)
    records = read_records(out / "predictions.json", require_run_time=True)
    assert [r.raw_file for r in records] == rel
    assert all(r.h_samples == tuple(H_SAMPLES) for r in records)
    assert summary.frames == FRAMES and summary.predictions == out / "predictions.json"
    assert summary.overlays == out / "overlays"


def test_folder_predictions_score_well_against_the_synthetic_truth(folder_run, dataset):
    _, out = folder_run
    records = read_records(out / "predictions.json", require_run_time=True)
    assert all(r.run_time > 0 for r in records)
    # lanes are what is tested here: on a busy 2-core machine a frame can pass tuSimple's 200 ms limit
    records = [replace(r, run_time=0.0) for r in records]
    score = score_records(records, load_ground_truth(dataset))
    assert score.frames == FRAMES
    assert score.accuracy >= 0.8 and score.fp <= 0.3 and score.fn <= 0.3, score


def test_summary_counts_match_the_predictions(folder_run):
    summary, out = folder_run
    records = read_records(out / "predictions.json")
    assert summary.lanes_found == sum(len(r.lanes) for r in records) > 0
    assert summary.median_ms == pytest.approx(np.median([r.run_time for r in records]), abs=1e-3)
    text = summary.describe()
    assert str(summary.predictions) in text and str(summary.overlays) in text and f"frames={FRAMES}" in text


def test_batch_size_does_not_change_the_lanes(detector, dataset, folder_run, tmp_path):
    _, out3 = folder_run
    predict_path(detector, dataset, tmp_path, batch_size=1, progress=False)
    batched, single = read_records(out3 / "predictions.json"), read_records(tmp_path / "predictions.json")
    assert [r.raw_file for r in batched] == [r.raw_file for r in single]
    for a, b in zip(batched, single):
        assert len(a.lanes) == len(b.lanes), a.raw_file
        for lane_a, lane_b in zip(a.lanes, b.lanes):
            np.testing.assert_allclose(lane_a, lane_b, atol=1e-3, err_msg=a.raw_file)


def test_max_frames_stops_early(detector, dataset, frame_paths, tmp_path):
    summary = predict_path(detector, dataset, tmp_path, batch_size=3, max_frames=2, progress=False)
    first_two = [p.relative_to(dataset).as_posix() for p in frame_paths[:2]]
    assert summary.frames == 2
    assert [r.raw_file for r in read_records(tmp_path / "predictions.json")] == first_two
    assert len(list((tmp_path / "overlays").rglob("*.jpg"))) == 2


def test_single_image_of_another_size(detector, frame_paths, tmp_path):
    image = cv2.resize(cv2.imread(str(frame_paths[0])), (960, 540), interpolation=cv2.INTER_AREA)
    source = tmp_path / "small.png"
    cv2.imwrite(str(source), image)
    summary = predict_path(detector, source, tmp_path / "out", progress=False)
    overlay = cv2.imread(str(tmp_path / "out" / "overlays" / "small.jpg"))
    assert overlay is not None and overlay.shape == (540, 960, 3)
    [record] = read_records(summary.predictions)
    assert record.raw_file == "small.png"
    crop = detector.prep.crop_rows(540)  # 108: rows 110, 120, ..., 530
    assert record.h_samples == tuple(range(-(-crop // 10) * 10, 540, 10)) == sample_rows(540, detector.prep)
    assert record.h_samples[0] == 110 and record.h_samples[-1] == 530
    assert len(record.lanes) >= 2
    for lane in record.lanes:
        present = [x for x in lane if x != ABSENT]
        assert len(present) >= 5 and all(0 <= x < 960 for x in present)


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()


def _read_video(path: Path) -> tuple[int, tuple[int, int], float]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    count, size = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, size = count + 1, (frame.shape[1], frame.shape[0])
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return count, size, fps


def test_video_gives_an_overlay_video_and_one_record_per_frame(detector, frame_paths, tmp_path):
    frames = [cv2.resize(cv2.imread(str(p)), (640, 360)) for p in frame_paths]
    frames = (frames + frames)[:8]
    source = tmp_path / "drive.mp4"
    _write_video(source, frames, fps=10)
    summary = predict_path(detector, source, tmp_path / "out", batch_size=3, progress=False)
    assert summary.frames == 8 and summary.overlays == tmp_path / "out" / "drive_lanes.mp4"
    count, size, fps = _read_video(summary.overlays)
    assert (count, size) == (8, (640, 360)) and fps == pytest.approx(10, abs=0.01)
    records = read_records(summary.predictions)
    assert [r.raw_file for r in records] == [f"drive.mp4#{i}" for i in range(8)]
    assert all(r.h_samples == sample_rows(360, detector.prep) for r in records)
    assert sum(len(r.lanes) for r in records) >= 8
    assert not list((tmp_path / "out").rglob("*.jpg"))


def test_overlay_tints_lane_pixels_and_leaves_the_rest(detector, frame_paths, tmp_path):
    image = read_rgb(frame_paths[0])
    detection = detector(image)
    mask = detection.instance_mask
    assert mask.shape == image.shape[:2] and mask.max() >= 2
    drawn = draw_detection(image, detection)
    assert drawn.shape == image.shape and not np.shares_memory(drawn, image)

    lines = draw_lanes(np.zeros_like(image), detection.lanes).any(axis=2)  # polylines and ids
    near = cv2.dilate((lines | (mask > 0)).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert (~near).mean() > 0.5
    assert np.array_equal(drawn[~near], image[~near])
    tinted = (mask > 0) & ~cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert tinted.sum() > 500
    colours = np.zeros((256, 3))
    for lane in detection.lanes:
        colours[lane.id] = lane_colour(lane.position)
    expected = np.rint(0.55 * image[tinted] + 0.45 * colours[mask[tinted]])
    np.testing.assert_allclose(drawn[tinted], expected, atol=1)
    for lane in detection.lanes:  # the polyline is drawn in the lane's colour
        x, y = np.round(lane.points).astype(int).T
        inside = (x >= 0) & (x < image.shape[1]) & (y >= 0) & (y < image.shape[0])
        on_line = np.all(drawn[y[inside], x[inside]] == lane_colour(lane.position), axis=1)
        assert inside.sum() >= 10 and on_line.mean() >= 0.9, lane.id

    # the saved overlay (JPEG) shows the same thing
    predict_path(detector, frame_paths[0], tmp_path, progress=False)
    saved = read_rgb(tmp_path / "overlays" / "20.jpg").astype(int)
    change = np.abs(saved - image.astype(int)).sum(axis=2)
    assert change[tinted].mean() > 40 > 4 > np.median(change[~near])


def test_errors_name_the_offending_path(detector, frame_paths, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        predict_path(detector, missing, tmp_path / "out", progress=False)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt.*expected an image"):
        predict_path(detector, text, tmp_path / "out", progress=False)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "labels.json").write_text("{}")
    with pytest.raises(ValueError, match=r"no images .* found in folder .*empty"):
        predict_path(detector, empty, tmp_path / "out", progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(Path(frame_paths[0]).read_bytes())
    (broken / "b.jpg").write_bytes(b"this is not a jpeg" * 10)
    with pytest.raises(FileNotFoundError, match=r"broken/b\.jpg"):
        predict_path(detector, broken, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "predictions.json").exists()
    video = tmp_path / "junk.mp4"
    video.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match=r"junk\.mp4"):
        predict_path(detector, video, tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        predict_path(detector, broken, tmp_path / "out", batch_size=0, progress=False)


def test_cli_predicts_a_folder_and_reports_missing_input(dataset, frame_paths, tmp_path):
    folder = tmp_path / "in"
    for p in frame_paths[:2]:
        target = folder / p.relative_to(dataset)
        target.parent.mkdir(parents=True)
        target.write_bytes(p.read_bytes())
    out = tmp_path / "out"
    command = [sys.executable, "-m", "lane_seg_core.cli", "predict"]
    result = processes.run(command + [str(folder), "--out", str(out), "--device", "cpu", "--no-progress"],
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "frames=2" in result.stdout and str(out / "predictions.json") in result.stdout
    assert str(out / "overlays") in result.stdout
    assert len(read_records(out / "predictions.json")) == 2
    assert "predict:" not in result.stderr  # --no-progress: no bar

    missing = tmp_path / "no_such_input"
    result = processes.run(command + [str(missing), "--out", str(out), "--device", "cpu"],
                            timeout=120, cwd=REPO)
    assert result.returncode == 2 and str(missing) in result.stderr


def test_same_named_images_keep_separate_overlays_and_reruns_skip_old_overlays(detector, frame_paths, tmp_path):
    image = cv2.resize(cv2.imread(str(frame_paths[0])), (320, 180))
    cv2.imwrite(str(tmp_path / "a.jpg"), image)
    cv2.imwrite(str(tmp_path / "a.PNG"), image)
    for _ in range(2):  # OUT inside the input folder: the second run must not predict the first run's overlays
        summary = predict_path(detector, tmp_path, tmp_path / "out", progress=False)
        assert summary.frames == 2
        assert [r.raw_file for r in read_records(summary.predictions)] == ["a.PNG", "a.jpg"]
        assert sorted(p.name for p in (tmp_path / "out" / "overlays").iterdir()) == ["a.PNG.jpg", "a.jpg"]
