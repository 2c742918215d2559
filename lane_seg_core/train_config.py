"""Training settings (a light module: the command line builds its options from these defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .preprocess import Preprocessing


@dataclass
class TrainConfig:
    """Every training setting; saved in the checkpoint as `train_args`."""

    data: str
    out: str
    val: str | None = None
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    img_size: tuple[int, int] = (256, 128)  # width, height
    crop_top: float = 0.2
    width: float = 1.0
    pretrained: str | None = None
    init: str | None = None  # fine-tune: weights and model/input/loss settings from this checkpoint
    lane_thickness: int = 3
    delta_var: float = 0.5
    delta_dist: float = 1.5
    seg_kind: str = "weighted_ce"
    augment: bool = True
    amp: bool = False
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    resume: bool = False
    val_every: int = 500  # steps; validation also runs after the last step
    val_frames: int = 200  # at most this many validation frames are scored
    log_every: int = 20
    progress: bool = True

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, ">= 1"),
            ("workers", self.workers >= 0, ">= 0"),
            ("val_every", self.val_every >= 1, ">= 1"),
            ("log_every", self.log_every >= 1, ">= 1"),
            ("width", 0 < self.width <= 4, "in (0, 4]"),
            ("delta_dist", self.delta_dist > self.delta_var > 0, "> delta_var > 0"),
        ]
        if self.init and self.pretrained:
            raise ValueError("--init and --pretrained exclude each other: --init already brings all the weights")
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"--{name.replace('_', '-')} must be {allowed}, got {getattr(self, name)}")
        self.img_size = tuple(self.img_size)

    def preprocessing(self) -> "Preprocessing":
        from .preprocess import Preprocessing  # torch: not needed to build the command line

        return Preprocessing(input_width=self.img_size[0], input_height=self.img_size[1], crop_top=self.crop_top)
