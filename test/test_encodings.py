"""Camera pixel encodings: each is decoded to the RGB the camera saw, and a malformed frame names the field."""

import cv2
import numpy as np
import pytest

from lane_seg_ros.encodings import ENCODINGS, ImageError, pixels_to_rgb

WIDTH, HEIGHT = 64, 48


def scene() -> np.ndarray:
    """An RGB uint8 test picture: smooth colour gradients and flat patches (demosaicing needs smooth areas)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([4 * x, 5 * y, 255 - 3 * x - 2 * y], axis=2).clip(0, 255).astype(np.uint8)
    rgb[8:24, 8:32] = (200, 40, 30)  # a red patch
    rgb[28:44, 36:60] = (20, 180, 60)  # a green one
    return rgb


def bayer(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The mosaic a sensor with this 2x2 pattern (ROS naming, top-left first) records of `rgb`."""
    channel = {"r": 0, "g": 1, "b": 2}
    mosaic = np.zeros(rgb.shape[:2], np.uint8)
    for i, c in enumerate(pattern):
        dy, dx = divmod(i, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel[c]]
    return mosaic


def to_16_bit(pixels: np.ndarray, big_endian: bool) -> bytes:
    """8-bit samples as 16-bit ones (value * 256 + 0x55 in the low byte, which decoding drops)."""
    wide = pixels.astype(np.uint16) * 256 + 0x55
    return wide.astype(">u2" if big_endian else "<u2").tobytes()


def interior(a: np.ndarray) -> np.ndarray:
    return a[4:-4, 4:-4].astype(int)


EXACT = {  # encoding -> the bytes a camera sends for scene()
    "rgb8": lambda rgb: rgb.tobytes(),
    "bgr8": lambda rgb: rgb[:, :, ::-1].tobytes(),
    "rgba8": lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]).tobytes(),
    "bgra8": lambda rgb: np.dstack([rgb[:, :, ::-1], np.zeros(rgb.shape[:2], np.uint8)]).tobytes(),
}


@pytest.mark.parametrize("encoding", list(EXACT))
@pytest.mark.parametrize("padding", [0, 7])
def test_packed_colour_encodings_decode_exactly_with_padded_rows(encoding, padding):
    rgb = scene()
    rows = np.frombuffer(EXACT[encoding](rgb), np.uint8).reshape(HEIGHT, -1)
    padded = np.concatenate([rows, np.full((HEIGHT, padding), 9, np.uint8)], axis=1)
    decoded = pixels_to_rgb(padded.tobytes(), WIDTH, HEIGHT, padded.shape[1], encoding)
    np.testing.assert_array_equal(decoded, rgb)


@pytest.mark.parametrize("big_endian", [0, 1])
@pytest.mark.parametrize("encoding, make", [
    ("rgb16", lambda rgb: rgb), ("bgr16", lambda rgb: rgb[:, :, ::-1]),
    ("rgba16", lambda rgb: np.dstack([rgb, rgb[:, :, :1]])), ("bgra16", lambda rgb: np.dstack([rgb[:, :, ::-1], rgb[:, :, :1]])),
])
def test_16_bit_colour_keeps_the_high_byte_in_either_byte_order(encoding, make, big_endian):
    rgb = scene()
    data = to_16_bit(np.ascontiguousarray(make(rgb)), bool(big_endian))
    step = len(data) // HEIGHT
    np.testing.assert_array_equal(pixels_to_rgb(data, WIDTH, HEIGHT, step, encoding, big_endian), rgb)


@pytest.mark.parametrize("encoding, depth", [("mono8", 1), ("mono16", 2)])
def test_mono_is_grey_in_all_three_channels(encoding, depth):
    grey = cv2.cvtColor(scene(), cv2.COLOR_RGB2GRAY)
    data = grey.tobytes() if depth == 1 else to_16_bit(grey, False)
    decoded = pixels_to_rgb(data, WIDTH, HEIGHT, WIDTH * depth, encoding)
    assert decoded.shape == (HEIGHT, WIDTH, 3)
    for c in range(3):
        np.testing.assert_array_equal(decoded[:, :, c], grey)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("depth", [8, 16])
def test_bayer_mosaics_are_demosaiced_into_the_colours_the_camera_saw(pattern, depth):
    rgb = scene()
    mosaic = bayer(rgb, pattern)
    data = mosaic.tobytes() if depth == 8 else to_16_bit(mosaic, False)
    decoded = pixels_to_rgb(data, WIDTH, HEIGHT, WIDTH * depth // 8, f"bayer_{pattern}{depth}")
    error = np.abs(interior(decoded) - interior(rgb))
    assert np.median(error) <= 3 and np.percentile(error, 95) <= 25, (pattern, np.median(error))
    assert tuple(decoded[16, 20]) == pytest.approx((200, 40, 30), abs=12)  # inside the red patch: red, not blue


def yuv_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 video-range Y [H,W] and U, V [H/2,W/2], as a camera's ISP and OpenCV's decoders define them."""
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    quarter = HEIGHT // 4
    u = i420[HEIGHT:HEIGHT + quarter].reshape(HEIGHT // 2, WIDTH // 2)
    v = i420[HEIGHT + quarter:].reshape(HEIGHT // 2, WIDTH // 2)
    return i420[:HEIGHT], u, v


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv_422_from_usb_cameras_gives_the_picture_back(encoding):
    rgb = scene()
    y, u, v = yuv_planes(rgb)
    u, v = np.repeat(u, 2, axis=0), np.repeat(v, 2, axis=0)  # 4:2:2 shares chroma along a row only
    y0, y1 = y[:, 0::2], y[:, 1::2]
    order = (u, y0, v, y1) if encoding in ("yuv422", "uyvy") else (y0, u, y1, v)
    packed = np.stack(order, axis=2).reshape(HEIGHT, WIDTH * 2)
    decoded = pixels_to_rgb(packed.tobytes(), WIDTH, HEIGHT, WIDTH * 2, encoding)
    assert np.median(np.abs(interior(decoded) - interior(rgb))) <= 4
    assert tuple(decoded[16, 20]) == pytest.approx((200, 40, 30), abs=12)  # U and V in their places


@pytest.mark.parametrize("encoding", ["nv12", "nv21"])
def test_nv12_and_nv21_give_the_picture_back(encoding):
    rgb = scene()
    y, u, v = yuv_planes(rgb)
    first, second = (u, v) if encoding == "nv12" else (v, u)
    chroma = np.stack([first, second], axis=2).reshape(HEIGHT // 2, WIDTH)  # interleaved, one row per two
    data = np.concatenate([y, chroma]).tobytes()
    decoded = pixels_to_rgb(data, WIDTH, HEIGHT, WIDTH, encoding)
    assert np.median(np.abs(interior(decoded) - interior(rgb))) <= 4
    assert tuple(decoded[16, 20]) == pytest.approx((200, 40, 30), abs=12)


def test_every_listed_encoding_is_tested():
    tested = set(EXACT) | {"rgb16", "bgr16", "rgba16", "bgra16", "mono8", "mono16", "yuv422", "uyvy", "yuv422_yuy2",
                           "yuyv", "nv12", "nv21"} | {f"bayer_{p}{d}" for p in ("rggb", "bggr", "gbrg", "grbg")
                                                     for d in (8, 16)}
    assert tested == set(ENCODINGS)


@pytest.mark.parametrize("args, message", [
    ((b"", 4, 4, 16, "32FC1"), "encoding '32FC1' is not supported (use one of rgb8, "),
    ((b"\0" * 64, 0, 4, 16, "rgb8"), "empty image: width=0 height=4"),
    ((b"\0" * 64, 5, 4, 10, "yuv422"), "yuv422 needs an even width, got 5x4"),
    ((b"\0" * 64, 4, 3, 4, "nv12"), "nv12 needs an even width and height, got 4x3"),
    ((b"\0" * 64, 4, 4, 7, "yuv422_yuy2"), "step=7 is less than the 8 bytes a row of 4 yuv422_yuy2 pixels needs"),
    ((b"\0" * 20, 4, 4, 4, "nv21"), "data has 20 bytes, expected step*rows=24"),
    ((b"\0" * 20, 4, 4, 8, "mono16"), "data has 20 bytes, expected step*height=32"),
])
def test_malformed_frames_name_the_field(args, message):
    with pytest.raises(ImageError) as err:
        pixels_to_rgb(*args)
    assert message in str(err.value)
