"""A calibrated camera as sensor_msgs/CameraInfo describes it: the camera matrix, lens distortion, image size.

Lane points come in the camera's raw pixels; before they go onto the ground plane (or into rviz) they are
undistorted to the ideal pinhole camera K, with OpenCV's models: `plumb_bob` (k1 k2 p1 p2 k3) and
`rational_polynomial` (8 coefficients) through cv2.undistortPoints, `equidistant` (fisheye k1..k4) through
cv2.fisheye.undistortPoints. ROS-free: the node and the bag tool build it from CameraInfo's fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

# distortion model -> the number of coefficients CameraInfo.d holds for it
DISTORTION_MODELS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-9)  # iterative undistortion: 0.001 px or better


def check_camera_matrix(k: Sequence[float] | np.ndarray, what: str = "camera matrix") -> np.ndarray:
    """K (3x3, or 9 values row-major as CameraInfo.k) as float64 [3,3]; ValueError naming `what` when unusable.

    Usable: finite, fx > 0 and fy > 0 (an uncalibrated CameraInfo has K all zero), last row 0 0 1.
    """
    try:
        matrix = np.asarray(k, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be 9 numbers (3x3 K), got {k!r}") from None
    if matrix.size != 9 or matrix.shape not in ((9,), (3, 3)):
        raise ValueError(f"{what} must be a 3x3 K or 9 values (CameraInfo.k), got shape {matrix.shape}")
    matrix = matrix.reshape(3, 3)
    if not np.isfinite(matrix).all():
        raise ValueError(f"{what} must be finite, got {matrix.ravel().tolist()}")
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise ValueError(f"{what}: fx and fy must be > 0 px, got fx={matrix[0, 0]}, fy={matrix[1, 1]} "
                         "(all zeros: the camera is not calibrated)")
    if matrix[1, 0] != 0 or matrix[2].tolist() != [0.0, 0.0, 1.0]:
        raise ValueError(f"{what} must be [fx s cx; 0 fy cy; 0 0 1], got {matrix.ravel().tolist()}")
    return matrix


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields
class CameraModel:
    """Camera matrix `k` [3,3], lens distortion (`distortion_model`, coefficients `d`), image size (0 = unknown)."""

    k: np.ndarray
    distortion_model: str = ""
    d: tuple[float, ...] = ()
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        k = check_camera_matrix(self.k)
        k.setflags(write=False)
        object.__setattr__(self, "k", k)
        d = tuple(float(v) for v in self.d)
        if not all(np.isfinite(d)):
            raise ValueError(f"distortion coefficients must be finite, got {list(d)}")
        if any(d):
            if self.distortion_model not in DISTORTION_MODELS:
                raise ValueError(f"distortion model '{self.distortion_model}' is not supported (use one of "
                                 f"{', '.join(DISTORTION_MODELS)}, or rectified images with D all zero)")
            expected = DISTORTION_MODELS[self.distortion_model]
            if len(d) != expected:
                raise ValueError(f"distortion model {self.distortion_model} takes {expected} coefficients in D, "
                                 f"got {len(d)}")
        object.__setattr__(self, "d", d)
        if self.width < 0 or self.height < 0:
            raise ValueError(f"image size must be >= 0 (0 = unknown), got {self.width}x{self.height}")

    @classmethod
    def from_camera_info(cls, k: Sequence[float], d: Sequence[float], distortion_model: str, width: int,
                         height: int, p: Sequence[float] = (), rectified: bool = False) -> "CameraModel":
        """From sensor_msgs/CameraInfo's fields; `rectified` images use P's left 3x3 and no distortion."""
        if rectified:
            if len(p) != 12:
                raise ValueError(f"rectified images need the 3x4 projection P (12 values), got {len(p)}")
            return cls(np.asarray(p, dtype=np.float64).reshape(3, 4)[:, :3], width=int(width), height=int(height))
        return cls(np.asarray(k, dtype=np.float64), distortion_model, tuple(d), int(width), int(height))

    @property
    def distorted(self) -> bool:
        """Whether lens distortion has to be removed from this camera's pixels."""
        return any(self.d)

    def fits(self, width: int, height: int) -> bool:
        """Whether this calibration is for images of width x height (always, when the size is unknown)."""
        return (self.width, self.height) in ((0, 0), (width, height))

    def undistort(self, points: np.ndarray) -> np.ndarray:
        """[N,2] raw image pixels -> [N,2] float64 pixels of the ideal pinhole camera K (no distortion)."""
        pixels = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 1, 2))  # OpenCV reads memory
        if not self.distorted or len(pixels) == 0:
            return pixels.reshape(-1, 2).copy()
        d = np.asarray(self.d, dtype=np.float64)
        if self.distortion_model == "equidistant":
            ideal = cv2.fisheye.undistortPoints(pixels, self.k, d, P=self.k, criteria=_CRITERIA)
        else:
            ideal = cv2.undistortPointsIter(pixels, self.k, d, None, self.k, _CRITERIA)
        return ideal.reshape(-1, 2)

    def distort(self, points: np.ndarray) -> np.ndarray:
        """[N,2] pixels of the ideal pinhole camera K -> [N,2] float64 raw image pixels (undistort's inverse)."""
        ideal = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 2))
        if not self.distorted or len(ideal) == 0:
            return ideal.copy()
        normalised = np.concatenate([(ideal - self.k[:2, 2]) @ np.linalg.inv(self.k[:2, :2]).T,
                                     np.ones((len(ideal), 1))], axis=1)
        d, zero = np.asarray(self.d, dtype=np.float64), np.zeros(3)
        if self.distortion_model == "equidistant":
            raw, _ = cv2.fisheye.projectPoints(normalised.reshape(-1, 1, 3), zero, zero, self.k, d)
        else:
            raw, _ = cv2.projectPoints(normalised, zero, zero, self.k, d)
        return raw.reshape(-1, 2)
