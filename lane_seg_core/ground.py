"""Optional ground-plane output for planners: image pixels on a flat road -> metres in the vehicle frame.

Vehicle frame (ROS REP 103): x forward, y left, z up, origin on the road. Image: u right, v down. A camera with
lens distortion has its pixels undistorted (lane_seg_core.camera) before they go through the homography.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .camera import CameraModel, check_camera_matrix
from .settings import Bounds, check_settings, setting

POSITIVE = Bounds(0.0, None, open_low=True)
PITCH = Bounds(-math.pi / 2, math.pi / 2, open_low=True, open_high=True, text="(-pi/2, pi/2)")


@dataclass(frozen=True, eq=False)  # eq=False: an ndarray field makes generated __eq__/__hash__ raise
class GroundPlane:
    """Image pixels on a flat road <-> metres in the vehicle frame (x forward, y left)."""

    homography: np.ndarray  # float64 [3,3]: ideal (undistorted) image (u, v, 1) -> ground (x, y, 1), up to scale
    max_distance: float = 80.0  # forward distance (m) beyond which points are dropped
    camera_x: float = 0.0  # forward position (m) of the camera in the vehicle frame; max_distance counts from here
    camera: CameraModel | None = None  # whose lens distortion is removed from image points first (None: none)

    def __post_init__(self) -> None:
        h = np.asarray(self.homography, dtype=np.float64)
        if h.shape != (3, 3):
            raise ValueError(f"GroundPlane.homography must be a 3x3 matrix, got shape {h.shape}")
        if not np.isfinite(h).all():
            raise ValueError(f"GroundPlane.homography must be finite, got {h.tolist()}")
        if np.linalg.cond(h) > 1e12:
            raise ValueError(f"GroundPlane.homography must be invertible, got a singular matrix {h.tolist()}")
        _check("max_distance", self.max_distance, POSITIVE, "m")
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
    def from_camera(cls, camera, height: float, pitch: float, *, x_offset: float = 0.0, y_offset: float = 0.0,
                    max_distance: float = 80.0) -> "GroundPlane":
        """Ground plane of a camera at `height` m, pitched down `pitch` rad.

        `camera` is a CameraModel (its lens distortion is removed from image points) or K: 3x3 or 9 values
        (CameraInfo.k) of a camera without distortion.
        """
        model = camera if isinstance(camera, CameraModel) else None
        k = model.k if model is not None else check_camera_matrix(camera, "GroundPlane.intrinsics")
        h = _check("height", height, POSITIVE, "m")
        t = _check("pitch", pitch, PITCH, "rad (positive = looking down)")
        x0, y0 = _finite("x_offset", x_offset), _finite("y_offset", y_offset)
        c, s = math.cos(t), math.sin(t)
        pitch_down = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])  # unpitched optical -> camera optical
        # ground (x, y, 1) -> unpitched optical frame (right, down, forward) relative to the camera centre
        ground_to_optical = np.array([[0.0, -1.0, y0], [0.0, 0.0, h], [1.0, 0.0, -x0]])
        image_to_ground = np.linalg.inv(k @ pitch_down @ ground_to_optical)
        distortion = model if model is not None and model.distorted else None
        return cls(image_to_ground, max_distance=max_distance, camera_x=x0, camera=distortion)

    @classmethod
    def from_homography(cls, homography, max_distance: float = 80.0, *, camera_x: float = 0.0) -> "GroundPlane":
        """Ground plane from a 3x3 image->ground homography (any scale or sign); camera at x = camera_x m."""
        return cls(homography, max_distance=max_distance, camera_x=camera_x)

    def to_ground(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N,2] image pixels (x=u, y=v) -> ([N,2] float64 metres (x forward, y left), [N] bool valid)."""
        uv1 = _homogeneous("points", points)
        if self.camera is not None:
            uv1[:, :2] = self.camera.undistort(uv1[:, :2])
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
        if self.camera is not None:
            seen = np.isfinite(pixels).all(axis=1)
            pixels[seen] = self.camera.distort(pixels[seen])
        return pixels


@dataclass(frozen=True)
class GroundConfig:
    """How lanes go onto the road: the camera's height and pitch (with its camera matrix), or a homography.

    Shared by the node's ground.* parameters and `lane-seg bag`'s flags, which are derived from these fields.
    """

    frame_id: str = setting("base_footprint", "frame of the ground points (x forward, y left, z up)")
    height: float = setting(1.5, "camera height above the road", Bounds(0.0, 100.0, open_low=True), "m")
    pitch: float = setting(0.0, "camera pitch, positive when looking down", PITCH, "rad")
    x_offset: float = setting(0.0, "camera position forward of the frame origin", Bounds(-100.0, 100.0), "m")
    y_offset: float = setting(0.0, "camera position left of the frame origin", Bounds(-100.0, 100.0), "m")
    max_distance: float = setting(80.0, "drop ground points farther ahead of the camera than this",
                                  Bounds(0.0, 10000.0, open_low=True), "m")
    homography: tuple[float, ...] = setting((), "image -> ground 3x3 homography, 9 values row-major; empty = build "
                                                "it from the camera matrix, height and pitch")
    intrinsics: tuple[float, ...] = setting((), "camera matrix K, 9 values row-major (CameraInfo.k); empty = the "
                                                "camera's calibration (camera_info)")

    def __post_init__(self) -> None:
        check_settings(self)
        for name in ("homography", "intrinsics"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) not in (0, 9):
                raise ValueError(f"GroundConfig.{name} must be 9 values (a row-major 3x3 matrix) or empty, "
                                 f"got {len(values)}")
            object.__setattr__(self, name, values)
        if self.intrinsics:
            check_camera_matrix(self.intrinsics, "GroundConfig.intrinsics")
        if self.homography:
            self.plane(None)  # refuses a singular or non-finite homography now, not at the first frame

    @property
    def needs_camera(self) -> bool:
        """True when the plane is built from a camera calibration that these settings do not hold."""
        return not self.homography and not self.intrinsics

    def plane(self, camera: CameraModel | None) -> GroundPlane | None:
        """The ground plane (None while it needs a camera and `camera` is None); `intrinsics` override the camera's."""
        if self.homography:
            rows = [self.homography[0:3], self.homography[3:6], self.homography[6:9]]
            return GroundPlane.from_homography(rows, self.max_distance, camera_x=self.x_offset)
        if self.intrinsics:
            camera = CameraModel(np.asarray(self.intrinsics))
        if camera is None:
            return None
        return GroundPlane.from_camera(camera, self.height, self.pitch, x_offset=self.x_offset,
                                       y_offset=self.y_offset, max_distance=self.max_distance)


def _finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"GroundPlane.{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"GroundPlane.{name} must be a finite number, got {value!r}")
    return v


def _check(name: str, value, bounds: Bounds, unit: str) -> float:
    v = _finite(name, value)
    if v not in bounds:
        shown = str(bounds)
        raise ValueError(f"GroundPlane.{name} must be {shown if shown[0] in '<>' else 'in ' + shown} {unit}, "
                         f"got {value!r}")
    return v


def _homogeneous(name: str, points) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"GroundPlane.{name} must be an [N,2] array, got shape {p.shape}")
    return np.concatenate([p, np.ones((len(p), 1))], axis=1)
