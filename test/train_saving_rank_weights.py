"""`lane-seg train ARGS` (the ordinary command line), then each process saves its final state dict as OUT/rank<R>.pt.

The torchrun test runs this to check that every rank ends with the same weights.
"""

import sys
from pathlib import Path

import torch

from lane_seg_core import train
from lane_seg_core.cli import main


class RankWeightsTrainer(train.Trainer):
    def run(self, *args, **kwargs):
        metrics = super().run(*args, **kwargs)
        torch.save(self.model.state_dict(), Path(self.cfg.out) / f"rank{self.dist.rank}.pt")
        return metrics


if __name__ == "__main__":
    train.Trainer = RankWeightsTrainer  # what the command line builds
    sys.exit(main(sys.argv[1:]))
