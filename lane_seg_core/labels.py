"""The labelled frames of a dataset folder, in whichever format its labels are: tuSimple's or CULane's.

A folder with both is an error rather than a silent choice: training on one label set while the user meant
the other would go unnoticed, and keeping one format per folder is easy.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import culane
from .tusimple import LaneRecord, label_files_in, read_records


def read_folder(data_dir: str | os.PathLike) -> list[LaneRecord]:
    """Every labelled frame of a folder: its tuSimple label files, or its CULane `*.lines.txt` files."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {data_dir}")
    tusimple_files = label_files_in(data_dir)
    culane_files = culane.find_label_files(data_dir)
    if tusimple_files and culane_files:
        raise ValueError(
            f"{data_dir} has both tuSimple labels ({', '.join(f.name for f in tusimple_files)}) and "
            f"{len(culane_files)} CULane *.lines.txt file(s) (first: {culane_files[0]}): keep one format per folder"
        )
    if tusimple_files:
        return [r for f in tusimple_files for r in read_records(f)]
    if culane_files:
        return culane.read_folder(data_dir, culane_files)
    raise FileNotFoundError(
        f"no label_data_*.json or test_label.json (tuSimple) and no *.lines.txt beside "
        f"{'/'.join(culane.IMAGE_SUFFIXES)} images (CULane) in {data_dir}"
    )
