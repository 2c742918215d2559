"""The node's parameters, each declared once: type, default, range, description, and whether it may change at run time.

The post-processing and ground-plane parameters are derived from the core's declarations (PostprocessConfig and
GroundConfig fields: description, unit, range), so the node, `lane-seg bag` and the docs cannot disagree. The
post-processing ones have no default here: they default to the loaded checkpoint's own values, so the checkpoint
stays their one source of truth.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from lane_seg_core.ground import GroundConfig
from lane_seg_core.postprocess import PostprocessConfig
from lane_seg_core.settings import Bounds, Setting, settings_of

T = Parameter.Type
SCALAR_TYPES = (T.DOUBLE, T.INTEGER, T.BOOL, T.STRING)
TYPE_WORDS = {T.DOUBLE: "a double (a number with a decimal point, e.g. 0.8)", T.INTEGER: "an integer",
              T.BOOL: "true or false", T.STRING: "a string", T.DOUBLE_ARRAY: "9 doubles, e.g. [1.0, 0.0, ...]"}
# Parameters every rclpy node may have besides the ones declared here (ROS's own)
ROS_OWN = ("use_sim_time", "start_type_description_service")
ROS_OWN_PREFIXES = ("qos_overrides.",)
QOS_RELIABILITY = ("best_effort", "reliable")
GROUND_PREFIX = "ground."
# PostprocessConfig fields the node exposes (the others stay as the checkpoint has them)
NODE_POSTPROCESS = ("lane_threshold", "bandwidth", "min_pixels", "max_lanes", "polyline_step")


@dataclass(frozen=True)
class Spec:
    """One parameter. `default` None: the checkpoint's value; an empty array is declared typed but unset."""

    name: str
    type: Parameter.Type
    default: Any
    description: str
    bounds: Bounds | None = None  # allowed values; the descriptor carries its closed hull when both ends are finite
    runtime: bool = False  # may change while the node runs; otherwise setting it is refused: it requires a restart

    def descriptor(self) -> ParameterDescriptor:
        # Scalars are typed by this module (type_error), not by rclpy, whose refusal reads "expected '3' got '2'";
        # an integer for a double is taken as that double (coerce).
        descriptor = ParameterDescriptor(name=self.name, type=self.type.value, description=self.description,
                                         dynamic_typing=self.type in SCALAR_TYPES)
        bounded = self.bounds is not None and self.bounds.low is not None and self.bounds.high is not None
        if bounded and self.type == T.INTEGER:
            descriptor.integer_range = [IntegerRange(from_value=int(self.bounds.low), to_value=int(self.bounds.high),
                                                     step=1)]
        elif bounded:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(self.bounds.low), to_value=float(self.bounds.high), step=0.0)
            ]
        when = "can change at run time" if self.runtime else "read at start-up only"
        descriptor.additional_constraints = f"in {self.bounds}; {when}" if self.bounds is not None else when
        return descriptor

    @classmethod
    def of(cls, setting: Setting, prefix: str = "", checkpoint_default: bool = False, runtime: bool = True) -> "Spec":
        """The parameter of a core setting (a PostprocessConfig or GroundConfig field)."""
        kind = {float: T.DOUBLE, int: T.INTEGER, bool: T.BOOL, str: T.STRING}.get(setting.type, T.DOUBLE_ARRAY)
        unit = f" ({setting.info.unit})" if setting.info.unit else ""
        return cls(prefix + setting.name, kind, None if checkpoint_default else setting.default,
                   setting.info.description + unit, setting.info.bounds, runtime)


STARTUP = (
    Spec("checkpoint", T.STRING, "",
         "checkpoint file (.pt, or .onnx from `lane-seg export`); empty = the built-in model"),
    Spec("device", T.STRING, "auto",
         "auto (CUDA when present, else CPU), cpu, cuda or cuda:N; cuda without CUDA is an error"),
    Spec("threads", T.INTEGER, 0, "torch CPU threads; 0 = half the CPUs (all of them make torch stall when another "
         "process takes a core)", Bounds(0, 256)),
    Spec("use_compressed", T.BOOL, False,
         "subscribe to image/compressed (sensor_msgs/CompressedImage) instead of image"),
    Spec("qos.reliability", T.STRING, "best_effort", "input QoS reliability: best_effort (sensor data) or reliable"),
    Spec("qos.depth", T.INTEGER, 1, "input QoS history depth (keep last N)", Bounds(1, 100)),
)
POSTPROCESS = tuple(Spec.of(s, checkpoint_default=True) for s in settings_of(PostprocessConfig)
                    if s.name in NODE_POSTPROCESS)
OUTPUT = (
    Spec("publish_overlay", T.BOOL, True, "publish lanes/overlay (rgb8 debug image) while someone subscribes to it",
         runtime=True),
    Spec("diagnostics_period", T.DOUBLE, 5.0, "seconds between two status reports (log line and /diagnostics)",
         Bounds(0.1, 3600.0), runtime=True),
)
CAMERA = (
    Spec("rectified", T.BOOL, False, "the images are rectified (image_proc's image_rect): camera_info's P is used "
         "and its lens distortion ignored", runtime=True),
)
GROUND = (
    Spec("ground.enabled", T.BOOL, False, "add metric lane points on a flat road (Lane.points_ground)", runtime=True),
    *(Spec.of(s, GROUND_PREFIX) for s in settings_of(GroundConfig)),
)
SPECS = {spec.name: spec for spec in STARTUP + POSTPROCESS + OUTPUT + CAMERA + GROUND}


def declare(node: Node, specs: Sequence[Spec], checkpoint_defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Declare `specs` on the node (overrides from the parameters file or -p apply); their values by name.

    ValueError naming the parameter and the type it needs for a value of the wrong type (an integer for a double is
    taken as that double); rclpy's ParameterException subclasses for a value outside its range.
    """
    values = {}
    for spec in specs:
        default = checkpoint_defaults[spec.name] if spec.default is None else spec.default
        if spec.type == T.DOUBLE_ARRAY and len(default) == 0:
            default = T.DOUBLE_ARRAY  # rclpy cannot infer the type of an empty list: declare it typed, unset
        elif spec.type == T.DOUBLE:
            default = float(default)
        elif spec.type == T.INTEGER:
            default = int(default)
        declared = node.declare_parameter(spec.name, default, spec.descriptor())
        fixed = coerce([declared])[0]
        problem = type_error(fixed)
        if problem:
            raise ValueError(problem)
        if fixed is not declared:
            node.set_parameters([fixed])
        values[spec.name] = value_of(fixed)
    return values


def coerce(changed: list[Parameter]) -> list[Parameter]:
    """The parameters with integers given for doubles (or integer arrays for double arrays) made doubles."""
    fixed = []
    for parameter in changed:
        spec = SPECS.get(parameter.name)
        if spec is not None and spec.type == T.DOUBLE and parameter.type_ == T.INTEGER:
            parameter = Parameter(parameter.name, T.DOUBLE, float(parameter.value))
        elif spec is not None and spec.type == T.DOUBLE_ARRAY and parameter.type_ == T.INTEGER_ARRAY:
            parameter = Parameter(parameter.name, T.DOUBLE_ARRAY, [float(v) for v in parameter.value])
        fixed.append(parameter)
    return fixed


def type_error(parameter: Parameter) -> str | None:
    """'NAME must be <type>, got ...' when one of our parameters has a value of another type; else None."""
    spec = SPECS.get(parameter.name)
    if spec is None or parameter.type_ == spec.type or (spec.type == T.DOUBLE_ARRAY and parameter.type_ == T.NOT_SET):
        return None
    given = parameter.type_.name.lower().replace("_", " ")
    return f"{spec.name} must be {TYPE_WORDS[spec.type]}, got the {given} {parameter.value!r}"


def unknown_parameters(names: Sequence[str]) -> list[str]:
    """A warning for each name the node does not declare (a typo in -p or the parameters file), with the nearest."""
    warnings = []
    for name in names:
        if name in SPECS or name in ROS_OWN or name.startswith(ROS_OWN_PREFIXES):
            continue
        nearest = difflib.get_close_matches(name, list(SPECS), n=1, cutoff=0.6)
        hint = f"; did you mean '{nearest[0]}'?" if nearest else f" (the node's parameters: {', '.join(SPECS)})"
        warnings.append(f"unknown parameter '{name}' ignored{hint}")
    return warnings


def value_of(parameter: Parameter) -> Any:
    """A parameter's value; arrays as tuples, an unset array as ()."""
    if parameter.type_ == T.NOT_SET:
        return ()
    if parameter.type_ in (T.DOUBLE_ARRAY, T.INTEGER_ARRAY, T.BOOL_ARRAY, T.STRING_ARRAY, T.BYTE_ARRAY):
        return tuple(parameter.value)
    return parameter.value


def postprocess_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The post-processing parameters as keyword arguments of LaneDetector.with_settings."""
    return {spec.name: values[spec.name] for spec in POSTPROCESS}


def check_startup(values: Mapping[str, Any]) -> None:
    """ValueError naming the parameter for start-up values the descriptors cannot check."""
    if values["qos.reliability"] not in QOS_RELIABILITY:
        allowed = ", ".join(QOS_RELIABILITY)
        raise ValueError(f"qos.reliability must be one of {allowed}, got '{values['qos.reliability']}'")


def ground_config(values: Mapping[str, Any]) -> GroundConfig:
    """The ground.* parameters as the core's GroundConfig; ValueError naming the parameter (ground.<field>)."""
    try:
        return GroundConfig(**{spec.name.removeprefix(GROUND_PREFIX): values[spec.name] for spec in GROUND
                               if spec.name != "ground.enabled"})
    except ValueError as exc:  # the core names its fields GroundConfig.<field> / GroundPlane.<field>
        reason = str(exc).replace("GroundPlane.camera_x", "ground.x_offset")
        raise ValueError(reason.replace("GroundConfig.", GROUND_PREFIX).replace("GroundPlane.", GROUND_PREFIX)) from None


# ---------------------------------------------------------------------------------------------------- docs tables

TYPE_NAMES = {T.STRING: "string", T.INTEGER: "integer", T.DOUBLE: "double", T.BOOL: "bool", T.DOUBLE_ARRAY: "double[9]"}


def table_row(spec: Spec, columns: Sequence[str]) -> str:
    """The markdown table row of a parameter for a table with these column headings (README.md, docs/vehicle.md).

    Known headings: parameter, type, default, range, run time (yes / restart), changes at run time (yes /
    no (restart)) and an empty last one for the description, which carries the range when no column does.
    """
    if spec.default is None:
        default = "from the checkpoint"
    elif isinstance(spec.default, bool):
        default = str(spec.default).lower()
    elif spec.default in ("", ()):
        default = '""' if spec.default == "" else "unset"
    else:
        default = str(spec.default)
    description = spec.description
    if "range" not in columns and spec.bounds is not None:
        description += f", in {spec.bounds}" if str(spec.bounds)[0] not in "<>" else f", {spec.bounds}"
    cells = {"parameter": f"`{spec.name}`", "type": TYPE_NAMES[spec.type], "default": default,
             "range": str(spec.bounds) if spec.bounds is not None else "",
             "run time": "yes" if spec.runtime else "restart",
             "changes at run time": "yes" if spec.runtime else "no (restart)", "": description}
    unknown = [c for c in columns if c not in cells]
    if unknown:
        raise ValueError(f"parameter table column(s) {unknown} unknown; known: {', '.join(map(repr, cells))}")
    return "|" + "|".join(f" {cells[c]} " if cells[c] else " " for c in columns) + "|"
