"""Settings declared once: each dataclass field carries its description, unit and allowed range.

The core's configuration dataclasses (PostprocessConfig, GroundConfig) declare their fields with `setting(...)`
and validate them with `check_settings`. The ROS node's parameters, the bag tool's flags and the parameter
tables of the docs are derived from these declarations, so a default or a range lives in one place.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Iterator


@dataclass(frozen=True)
class Bounds:
    """An interval of allowed values; None = unbounded on that side; `text` replaces the numbers when shown."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    text: str = ""  # e.g. "(-pi/2, pi/2)"

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.open_high else value > self.high))

    def __str__(self) -> str:
        if self.text:
            return self.text
        if self.high is None and self.low is not None:
            return f"{'>' if self.open_low else '>='} {_number(self.low)}"
        if self.low is None and self.high is not None:
            return f"{'<' if self.open_high else '<='} {_number(self.high)}"
        return (f"{'(' if self.open_low else '['}{_number(self.low)}, {_number(self.high)}"
                f"{')' if self.open_high else ']'}")


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class SettingInfo:
    """What a setting means: a one-line description, its unit ('' when none) and its allowed values."""

    description: str
    bounds: Bounds | None = None
    unit: str = ""


def setting(default: Any, description: str, bounds: Bounds | None = None, unit: str = "") -> Any:
    """A dataclass field with its description, unit and bounds (read by `check_settings` and `settings_of`)."""
    return dataclasses.field(default=default, metadata={"setting": SettingInfo(description, bounds, unit)})


@dataclass(frozen=True)
class Setting:
    """One declared field of a settings dataclass."""

    name: str
    type: type
    default: Any
    info: SettingInfo


def settings_of(cls: type) -> Iterator[Setting]:
    """The fields of a settings dataclass declared with `setting(...)`, in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "setting" in f.metadata:
            yield Setting(f.name, hints[f.name], f.default, f.metadata["setting"])


def check_settings(instance: Any) -> None:
    """ValueError naming `Class.field`, the allowed range and the value, for the first field out of its bounds."""
    owner = type(instance).__name__
    for item in settings_of(type(instance)):
        value = getattr(instance, item.name)
        bounds = item.info.bounds
        if bounds is None or isinstance(value, (str, tuple, bool)):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{owner}.{item.name} must be a number, got {value!r}")
        if value not in bounds:
            unit = f" {item.info.unit}" if item.info.unit else ""
            raise ValueError(f"{owner}.{item.name} must be {_phrase(bounds)}{unit}, got {value!r}")


def _phrase(bounds: Bounds) -> str:
    """'in (0, 1)' or '> 0': how a range reads after 'must be'."""
    shown = str(bounds)
    return shown if shown[0] in "<>" else f"in {shown}"
