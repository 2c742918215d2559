"""Optional ground-plane output for planners: image pixels on a flat road -> metres in the vehicle frame.

Vehicle frame (ROS REP 103): x forward, y left, z up, origin on the road. Image: u right, v down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)  # eq=False: an ndarray field makes generated __eq__/__hash__ raise
class GroundPlane:
    """Image pixels on a flat road <-> metres in the vehicle frame (x forward, y left)."""

    homography: np.ndarray  # float64 [3,3]: image (u, v, 1) -> ground (x, y, 1), up to scale
    max_distance: float = 80.0  # forward distance (m) beyond which points are dropped
    camera_x: float = 0.0  # forward position (m) of the camera in the vehicle frame; max_distance counts from here

    def __post_init__(self) -> None:
        h = np.asarray(self.homography, dtype=np.float64)
        if h.shape != (3, 3):
            raise ValueError(f"GroundPlane.homography must be a 3x3 matrix, got shape {h.shape}")
        if not np.isfinite(h).all():
            raise ValueError(f"GroundPlane.homography must be finite, got {h.tolist()}")
        if np.linalg.cond(h) > 1e12:
            raise ValueError(f"GroundPlane.homography must be invertible, got a singular matrix {h.tolist()}")
        _positive("max_distance", self.max_distance, "m")
        _finite("camera_x", self.camera_x)
        # The overall sign of a homography is free; fix it so that w > 0 means "in front of the camera". Row 2 of
        # ground->image is the camera depth of a ground point, which must grow with x (the camera looks forward).
        depth = np.linalg.inv(h)[2]
        ref = depth[0] if abs(depth[0]) > 1e-9 * np.abs(depth).max() else depth[2]  # depth[2]: looking straight down
        h = h if ref > 0 else -h
        h.setflags(write=False)
        object.__setattr__(self, "homography", h)
        object.__setattr__(self, "max_distance", float(self.max_distance))
        object.__setattr__(self, "camera_x", float(self.camera_x))

    @classmethod
    def from_camera(cls, intrinsics, height: float, pitch: float, *, x_offset: float = 0.0, y_offset: float = 0.0,
                    max_distance: float = 80.0) -> "GroundPlane":
        """Ground plane of a camera (K as 3x3 or 9 values, CameraInfo.k) at `height` m, pitched down `pitch` rad."""
        k = _intrinsics(intrinsics)
        h = _positive("height", height, "m")
        t = _finite("pitch", pitch)
        if not -math.pi / 2 < t < math.pi / 2:
            raise ValueError(f"GroundPlane.pitch must be in (-pi/2, pi/2) rad (positive = looking down), got {pitch}")
        x0, y0 = _finite("x_offset", x_offset), _finite("y_offset", y_offset)
        c, s = math.cos(t), math.sin(t)
        pitch_down = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])  # unpitched optical -> camera optical
        # ground (x, y, 1) -> unpitched optical frame (right, down, forward) relative to the camera centre
        ground_to_optical = np.array([[0.0, -1.0, y0], [0.0, 0.0, h], [1.0, 0.0, -x0]])
        image_to_ground = np.linalg.inv(k @ pitch_down @ ground_to_optical)
        return cls(image_to_ground, max_distance=max_distance, camera_x=x0)

    @classmethod
    def from_homography(cls, homography, max_distance: float = 80.0, *, camera_x: float = 0.0) -> "GroundPlane":
        """Ground plane from a 3x3 image->ground homography (any scale or sign); camera at x = camera_x m."""
        return cls(homography, max_distance=max_distance, camera_x=camera_x)

    def to_ground(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N,2] image pixels (x=u, y=v) -> ([N,2] float64 metres (x forward, y left), [N] bool valid)."""
        uv1 = _homogeneous("points", points)
        xyw = uv1 @ self.homography.T
        w = xyw[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            ground = xyw[:, :2] / w[:, None]
        forward = ground[:, 0] - self.camera_x
        # w <= 0: at or above the horizon (the ray never meets the road in front of the camera)
        valid = (w > 0) & np.isfinite(ground).all(axis=1) & (forward >= 0) & (forward <= self.max_distance)
        ground[~valid] = np.nan
        return ground, valid

    def to_image(self, ground: np.ndarray) -> np.ndarray:
        """[N,2] metres (x forward, y left) -> [N,2] float64 image pixels; NaN for points behind the camera."""
        xy1 = _homogeneous("ground", ground)
        uvw = xy1 @ np.linalg.inv(self.homography).T
        w = uvw[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = uvw[:, :2] / w[:, None]
        pixels[~(w > 0)] = np.nan
        return pixels


def _finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"GroundPlane.{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"GroundPlane.{name} must be a finite number, got {value!r}")
    return v


def _positive(name: str, value, unit: str) -> float:
    v = _finite(name, value)
    if v <= 0:
        raise ValueError(f"GroundPlane.{name} must be > 0 {unit}, got {value!r}")
    return v


def _intrinsics(intrinsics) -> np.ndarray:
    try:
        k = np.asarray(intrinsics, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"GroundPlane.intrinsics must be 9 numbers (3x3 K), got {intrinsics!r}") from None
    if k.size != 9 or k.shape not in ((9,), (3, 3)):
        raise ValueError(f"GroundPlane.intrinsics must be a 3x3 K or 9 values (CameraInfo.k), got shape {k.shape}")
    k = k.reshape(3, 3)
    if not np.isfinite(k).all():
        raise ValueError(f"GroundPlane.intrinsics must be finite, got {k.ravel().tolist()}")
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ValueError(f"GroundPlane.intrinsics fx and fy must be > 0 px, got fx={k[0, 0]}, fy={k[1, 1]}")
    if k[1, 0] != 0 or k[2].tolist() != [0.0, 0.0, 1.0]:
        raise ValueError(f"GroundPlane.intrinsics must be [fx s cx; 0 fy cy; 0 0 1], got {k.ravel().tolist()}")
    return k


def _homogeneous(name: str, points) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"GroundPlane.{name} must be an [N,2] array, got shape {p.shape}")
    return np.concatenate([p, np.ones((len(p), 1))], axis=1)
