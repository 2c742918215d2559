"""The shipped model: small, self-describing, and still finds lanes on frames it has never seen."""

import pytest

from lane_seg_core.checkpoint import load_checkpoint
from lane_seg_core.builtin import BUILTIN_CHECKPOINT
from lane_seg_core.evaluate import evaluate_folder
from lane_seg_core.inference import LaneDetector
from lane_seg_core.synth import generate_dataset


def test_builtin_checkpoint_is_small_and_carries_its_settings():
    assert BUILTIN_CHECKPOINT.stat().st_size <= 10 * 2**20
    ckpt = load_checkpoint(BUILTIN_CHECKPOINT)
    assert ckpt.training_state is None  # weights and settings only
    assert ckpt.train_args["seed"] == 0 and ckpt.metrics["val_accuracy"] >= 0.9
    assert 0 < ckpt.postprocess.lane_threshold < 1


@pytest.mark.slow
def test_builtin_model_still_scores_on_fresh_frames(tmp_path):
    generate_dataset(tmp_path, 40, seed=777_001, workers=2)  # a seed used neither in training nor in the demo
    detector = LaneDetector.from_checkpoint(BUILTIN_CHECKPOINT, device="cpu")
    score = evaluate_folder(detector, tmp_path, ignore_run_time=True)  # accuracy, whatever the machine's load
    assert score.accuracy >= 0.85 and score.fp <= 0.15 and score.fn <= 0.15, score
