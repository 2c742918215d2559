"""The tuSimple lane file format: one JSON object per line with `lanes`, `h_samples`, `raw_file`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from .files import atomic_path

ABSENT = -2  # tuSimple's marker for "no lane point at this row"
ROW_STEP = 10  # pixels between tuSimple's label rows
H_SAMPLES = tuple(range(160, 720, ROW_STEP))  # tuSimple's 56 label rows of a 1280x720 image


class Resampling(Protocol):
    """A lane that gives its x at image rows (lane_seg_core.postprocess.Lane)."""

    def resample(self, rows: Sequence[int], image_width: int) -> list[float]: ...


class LabelFormatError(ValueError):
    """A tuSimple label or prediction line that cannot be used; the message names file and line."""


@dataclass(frozen=True)
class LaneRecord:
    """One frame: lanes as x per row of `h_samples` (ABSENT where missing), left to right."""

    raw_file: str
    h_samples: tuple[int, ...]
    lanes: tuple[tuple[float, ...], ...]
    run_time: float | None = None  # ms, present in prediction files

    @classmethod
    def of_lanes(cls, raw_file: str, h_samples: Sequence[int], lanes: Iterable[Resampling], image_width: int,
                 run_time: float | None = None) -> "LaneRecord":
        """A prediction line: each lane's x at the rows `h_samples` of an image `image_width` wide (ABSENT off it)."""
        return cls(raw_file, tuple(h_samples), tuple(tuple(lane.resample(h_samples, image_width)) for lane in lanes),
                   run_time)

    def to_json(self) -> str:
        """Serialise in tuSimple's key order; integer-valued points are written as ints."""
        obj: dict = {
            "lanes": [[_compact(x) for x in lane] for lane in self.lanes],
            "h_samples": list(self.h_samples),
            "raw_file": self.raw_file,
        }
        if self.run_time is not None:
            obj["run_time"] = round(float(self.run_time), 3)
        return json.dumps(obj)


def _compact(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(float(x), 2)


def _require(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise LabelFormatError(f"{where}: {what}")


def parse_record(line: str, where: str, require_run_time: bool = False) -> LaneRecord:
    """Parse one JSON line; `where` ("file:line") prefixes every error."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LabelFormatError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    _require(isinstance(obj, dict), where, "expected a JSON object")
    for key in ("lanes", "h_samples", "raw_file"):
        _require(key in obj, where, f"missing key '{key}'")
    raw_file, h_samples, lanes = obj["raw_file"], obj["h_samples"], obj["lanes"]
    _require(isinstance(raw_file, str) and raw_file != "", where, "'raw_file' must be a non-empty string")
    _require(
        isinstance(h_samples, list) and len(h_samples) > 0
        and all(isinstance(h, int) and not isinstance(h, bool) for h in h_samples),
        where, "'h_samples' must be a non-empty list of integer rows",
    )
    _require(isinstance(lanes, list), where, "'lanes' must be a list of lanes")
    parsed = []
    for i, lane in enumerate(lanes):
        _require(isinstance(lane, list), where, f"lane {i} is not a list")
        _require(
            len(lane) == len(h_samples), where,
            f"lane {i} has {len(lane)} points but 'h_samples' has {len(h_samples)} rows",
        )
        _require(
            all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in lane),
            where, f"lane {i} holds a value that is not a number",
        )
        parsed.append(tuple(float(x) for x in lane))
    run_time = obj.get("run_time")
    if require_run_time:
        _require(isinstance(run_time, (int, float)), where, "missing or non-numeric 'run_time'")
    return LaneRecord(raw_file, tuple(h_samples), tuple(parsed), None if run_time is None else float(run_time))


def read_records(path: str | os.PathLike, require_run_time: bool = False) -> list[LaneRecord]:
    """Read every frame of a tuSimple JSON-lines file (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                records.append(parse_record(line, f"{path}:{number}", require_run_time))
    return records


def label_files_in(data_dir: Path) -> list[Path]:
    """The tuSimple label files of a folder, none if it has none: `label_data_*.json`, else `test_label.json`."""
    return sorted(data_dir.glob("label_data_*.json")) or sorted(data_dir.glob("test_label.json"))


def find_label_files(data_dir: str | os.PathLike) -> list[Path]:
    """The label files of a tuSimple folder: `label_data_*.json`, else `test_label.json`."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {data_dir}")
    files = label_files_in(data_dir)
    if not files:
        raise FileNotFoundError(f"no label_data_*.json or test_label.json in {data_dir}")
    return files


def write_records(path: str | os.PathLike, records: Iterable[LaneRecord]) -> Path:
    """Write JSON lines atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(record.to_json() + "\n")
    return path


def lane_points(lane: Sequence[float], h_samples: Sequence[int]) -> list[tuple[float, float]]:
    """The (x, y) points of a lane where it is present."""
    return [(float(x), float(y)) for x, y in zip(lane, h_samples) if x >= 0]
