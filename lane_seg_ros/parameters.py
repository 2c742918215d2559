"""The node's parameters, each declared once: type, default, range, description, and whether it may change at run time.

The post-processing settings (lane_threshold, bandwidth, min_pixels, max_lanes, polyline_step) have no default here:
they default to the loaded checkpoint's own values, so the checkpoint stays their one source of truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from lane_seg_core.ground import GroundPlane

T = Parameter.Type
QOS_RELIABILITY = ("best_effort", "reliable")
NOMINAL_K = (1000.0, 0.0, 640.0, 0.0, 1000.0, 360.0, 0.0, 0.0, 1.0)  # checks ground settings before camera_info came


@dataclass(frozen=True)
class Spec:
    """One parameter. `default` None: the checkpoint's value; an empty array is declared typed but unset."""

    name: str
    type: Parameter.Type
    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive; the core may exclude an end (lane_threshold is in (0, 1))
    runtime: bool = False  # may change while the node runs; otherwise setting it is refused: it requires a restart

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(name=self.name, type=self.type.value, description=self.description)
        if self.range is not None and self.type == T.INTEGER:
            low, high = int(self.range[0]), int(self.range[1])
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        elif self.range is not None:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(self.range[0]), to_value=float(self.range[1]), step=0.0)
            ]
        descriptor.additional_constraints = "can change at run time" if self.runtime else "read at start-up only"
        return descriptor


STARTUP = (
    Spec("checkpoint", T.STRING, "",
         "checkpoint file (.pt, or .onnx from `lane-seg export`); empty = the built-in model"),
    Spec("device", T.STRING, "auto",
         "auto (CUDA when present, else CPU), cpu, cuda or cuda:N; cuda without CUDA is an error"),
    Spec("threads", T.INTEGER, 0, "torch CPU threads; 0 = torch's default (1 is steadier on a shared CPU)", (0, 256)),
    Spec("use_compressed", T.BOOL, False,
         "subscribe to image/compressed (sensor_msgs/CompressedImage) instead of image"),
    Spec("qos.reliability", T.STRING, "best_effort", "input QoS reliability: best_effort (sensor data) or reliable"),
    Spec("qos.depth", T.INTEGER, 1, "input QoS history depth (keep last N)", (1, 100)),
)
POSTPROCESS = (  # defaults: the checkpoint's values; validated by lane_seg_core's PostprocessConfig
    Spec("lane_threshold", T.DOUBLE, None, "lane probability above which a pixel is a lane pixel, in (0, 1)",
         (0.0, 1.0), runtime=True),
    Spec("bandwidth", T.DOUBLE, None, "clustering radius of one lane in embedding space (2 x delta_var of training)",
         (0.0, 100.0), runtime=True),
    Spec("min_pixels", T.INTEGER, None, "lanes with fewer lane pixels at the network input are dropped",
         (1, 10**7), runtime=True),
    Spec("max_lanes", T.INTEGER, None, "keep at most this many lanes (the largest)", (1, 255), runtime=True),
    Spec("polyline_step", T.DOUBLE, None, "image rows between two points of a lane polyline", (0.5, 100.0),
         runtime=True),
)
OUTPUT = (
    Spec("publish_overlay", T.BOOL, True, "publish lanes/overlay (rgb8 debug image) while someone subscribes to it",
         runtime=True),
    Spec("diagnostics_period", T.DOUBLE, 5.0, "seconds between two status reports (log line and /diagnostics)",
         (0.1, 3600.0), runtime=True),
)
GROUND = (
    Spec("ground.enabled", T.BOOL, False, "add metric lane points on a flat road (Lane.points_ground)", runtime=True),
    Spec("ground.frame_id", T.STRING, "base_footprint", "frame of the ground points (x forward, y left, z up)",
         runtime=True),
    Spec("ground.height", T.DOUBLE, 1.5, "camera height above the road (m), > 0", (0.0, 100.0), runtime=True),
    Spec("ground.pitch", T.DOUBLE, 0.0, "camera pitch (rad), positive = looking down, in (-pi/2, pi/2)",
         (-math.pi / 2, math.pi / 2), runtime=True),
    Spec("ground.x_offset", T.DOUBLE, 0.0, "camera position forward of the frame origin (m)", (-100.0, 100.0),
         runtime=True),
    Spec("ground.y_offset", T.DOUBLE, 0.0, "camera position left of the frame origin (m)", (-100.0, 100.0),
         runtime=True),
    Spec("ground.max_distance", T.DOUBLE, 80.0, "drop ground points farther ahead of the camera than this (m), > 0",
         (0.0, 10000.0), runtime=True),
    Spec("ground.homography", T.DOUBLE_ARRAY, (), "image -> ground 3x3 homography, 9 values row-major; empty = "
         "build it from the camera intrinsics, ground.height and ground.pitch", runtime=True),
    Spec("ground.intrinsics", T.DOUBLE_ARRAY, (), "camera matrix K, 9 values row-major (CameraInfo.k); empty = take "
         "it from the camera_info topic", runtime=True),
)
SPECS = {spec.name: spec for spec in STARTUP + POSTPROCESS + OUTPUT + GROUND}


def declare(node: Node, specs: Sequence[Spec], checkpoint_defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Declare `specs` on the node (overrides from the parameters file or -p apply); their values by name.

    Raises rclpy's ParameterException subclasses for a value of the wrong type or outside its range.
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
        values[spec.name] = value_of(node.declare_parameter(spec.name, default, spec.descriptor()))
    return values


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


@dataclass(frozen=True)
class GroundSettings:
    """The ground.* parameters."""

    enabled: bool
    frame_id: str
    height: float
    pitch: float
    x_offset: float
    y_offset: float
    max_distance: float
    homography: tuple[float, ...]
    intrinsics: tuple[float, ...]

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "GroundSettings":
        return cls(**{spec.name.removeprefix("ground."): values[spec.name] for spec in GROUND})

    @property
    def needs_camera_info(self) -> bool:
        """True when the plane is built from the camera_info topic's K."""
        return self.enabled and not self.homography and not self.intrinsics

    def plane(self, camera_k: Sequence[float] | None = None) -> GroundPlane | None:
        """The ground plane; None when disabled or still waiting for camera_info.

        The settings are checked even when disabled (with a nominal K until one is known), so that an invalid value
        is refused when it is set, not when the ground plane is switched on. ValueError names what is wrong.
        """
        for name in ("homography", "intrinsics"):
            count = len(getattr(self, name))
            if count not in (0, 9):
                raise ValueError(f"ground.{name} must be 9 values (a row-major 3x3 matrix) or empty, got {count}")
        if self.enabled and not self.frame_id:
            raise ValueError("ground.frame_id must not be empty while ground.enabled is true")
        try:
            if self.homography:
                plane = GroundPlane.from_homography(
                    [self.homography[0:3], self.homography[3:6], self.homography[6:9]], self.max_distance,
                    camera_x=self.x_offset,
                )
            else:
                k = self.intrinsics or camera_k
                plane = GroundPlane.from_camera(
                    k or NOMINAL_K, self.height, self.pitch, x_offset=self.x_offset, y_offset=self.y_offset,
                    max_distance=self.max_distance,
                )
                if not k:
                    return None
        except ValueError as exc:  # the core names its fields GroundPlane.<field>; here they are ground.<field>
            reason = str(exc).replace("GroundPlane.camera_x", "ground.x_offset").replace("GroundPlane.", "ground.")
            raise ValueError(reason) from None
        return plane if self.enabled else None
