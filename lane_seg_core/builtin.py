"""The built-in model: a small SegNet trained on synthetic roads (training/train_builtin.sh made it)."""

from pathlib import Path

BUILTIN_CHECKPOINT = Path(__file__).parent / "weights" / "lane_seg_synth.pt"
