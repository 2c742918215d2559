"""sensor_msgs/Image pixel encodings -> RGB uint8: what camera drivers publish (usb_cam, v4l2_camera, Spinnaker, ...).

Packed 8- and 16-bit colour and mono, Bayer mosaics (demosaiced), YUV 4:2:2 (yuv422 = UYVY, yuv422_yuy2 = YUYV)
and the NV12 / NV21 4:2:0 layouts. 16-bit values become 8-bit by dropping the low byte, as cv_bridge does.
Every size, step and length is checked first, so a malformed frame is an ImageError naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

MAX_PIXELS = 8192 * 8192  # refuse absurd sizes before allocating anything


class ImageError(ValueError):
    """A camera message that cannot be used; the message names the field that is wrong."""


@dataclass(frozen=True)
class Layout:
    """How an encoding lays out its pixels: bytes per row of `width` pixels, rows of `height`, and the decoder."""

    row_bytes: Callable[[int], int]  # width -> bytes a row needs at least
    rows: Callable[[int], int]  # height -> rows in the buffer (NV12: the Y plane and half as many UV rows)
    decode: Callable[[np.ndarray, int, int, bool], np.ndarray]  # (rows x step bytes, width, height, big endian)
    even: str = ""  # "width", "both": sizes that must be even (chroma is shared by pixel pairs)


def _packed(channels: int, conversion: int | None, depth: int = 1) -> Layout:
    def decode(buffer: np.ndarray, width: int, height: int, big_endian: bool) -> np.ndarray:
        pixels = buffer[:, : width * channels * depth]
        if depth == 2:  # keep the high byte of each sample
            pixels = pixels.reshape(height, width * channels, 2)[:, :, 0 if big_endian else 1]
        pixels = pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)
        return pixels if conversion is None else cv2.cvtColor(pixels, conversion)

    return Layout(lambda w: w * channels * depth, lambda h: h, decode)


def _yuv422(conversion: int) -> Layout:
    def decode(buffer: np.ndarray, width: int, height: int, big_endian: bool) -> np.ndarray:
        return cv2.cvtColor(np.ascontiguousarray(buffer[:, : width * 2]).reshape(height, width, 2), conversion)

    return Layout(lambda w: w * 2, lambda h: h, decode, even="width")


def _yuv420_semiplanar(conversion: int) -> Layout:
    def decode(buffer: np.ndarray, width: int, height: int, big_endian: bool) -> np.ndarray:
        return cv2.cvtColor(np.ascontiguousarray(buffer[:, :width]), conversion)

    return Layout(lambda w: w, lambda h: h + h // 2, decode, even="both")


ENCODINGS: dict[str, Layout] = {
    "rgb8": _packed(3, None),
    "bgr8": _packed(3, cv2.COLOR_BGR2RGB),
    "rgba8": _packed(4, cv2.COLOR_RGBA2RGB),
    "bgra8": _packed(4, cv2.COLOR_BGRA2RGB),
    "mono8": _packed(1, cv2.COLOR_GRAY2RGB),
    "rgb16": _packed(3, None, depth=2),
    "bgr16": _packed(3, cv2.COLOR_BGR2RGB, depth=2),
    "rgba16": _packed(4, cv2.COLOR_RGBA2RGB, depth=2),
    "bgra16": _packed(4, cv2.COLOR_BGRA2RGB, depth=2),
    "mono16": _packed(1, cv2.COLOR_GRAY2RGB, depth=2),
    # ROS names a Bayer mosaic by its top-left 2x2; OpenCV by the one a pixel to the right and down (as cv_bridge)
    "bayer_rggb8": _packed(1, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": _packed(1, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": _packed(1, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": _packed(1, cv2.COLOR_BayerGB2RGB),
    "bayer_rggb16": _packed(1, cv2.COLOR_BayerBG2RGB, depth=2),
    "bayer_bggr16": _packed(1, cv2.COLOR_BayerRG2RGB, depth=2),
    "bayer_gbrg16": _packed(1, cv2.COLOR_BayerGR2RGB, depth=2),
    "bayer_grbg16": _packed(1, cv2.COLOR_BayerGB2RGB, depth=2),
    "yuv422": _yuv422(cv2.COLOR_YUV2RGB_UYVY),  # ROS's yuv422 is UYVY (usb_cam's default pixel format)
    "uyvy": _yuv422(cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": _yuv422(cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": _yuv422(cv2.COLOR_YUV2RGB_YUY2),
    "nv12": _yuv420_semiplanar(cv2.COLOR_YUV2RGB_NV12),
    "nv21": _yuv420_semiplanar(cv2.COLOR_YUV2RGB_NV21),
}


def pixels_to_rgb(data, width: int, height: int, step: int, encoding: str, is_bigendian: int = 0) -> np.ndarray:
    """An Image's fields -> RGB uint8 [H,W,3]; a view of `data` for rgb8 (no copy); ImageError naming the field."""
    layout = ENCODINGS.get(encoding)
    if layout is None:
        raise ImageError(f"encoding '{encoding}' is not supported (use one of {', '.join(ENCODINGS)}; "
                         "e.g. set the camera driver's pixel format to one of them)")
    if height == 0 or width == 0:
        raise ImageError(f"empty image: width={width} height={height}")
    if height * width > MAX_PIXELS:
        raise ImageError(f"image of {width}x{height} is larger than the {MAX_PIXELS} pixels accepted")
    if layout.even and (width % 2 or (layout.even == "both" and height % 2)):
        sizes = "width and height" if layout.even == "both" else "width"
        raise ImageError(f"{encoding} needs an even {sizes}, got {width}x{height}")
    if step < layout.row_bytes(width):
        raise ImageError(f"step={step} is less than the {layout.row_bytes(width)} bytes a row of {width} {encoding} "
                         f"pixels needs")
    rows = layout.rows(height)
    if len(data) < step * rows:
        raise ImageError(f"data has {len(data)} bytes, expected step*{'height' if rows == height else 'rows'}="
                         f"{step * rows}")
    buffer = np.frombuffer(data, dtype=np.uint8, count=step * rows).reshape(rows, step)
    return layout.decode(buffer, width, height, bool(is_bigendian))
