"""Zero-copy views of serialised camera messages (sensor_msgs/Image, CompressedImage) in little-endian CDR.

rclpy's deserialisation copies a 720p frame into Python objects (3 ms here); the node only needs the
header, a few fields and a view of the pixels, which this reads straight from the received bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from .conversions import ImageError, compressed_to_rgb, image_to_rgb

CDR_LITTLE_ENDIAN = b"\x00\x01"  # encapsulation id of plain little-endian CDR, what Fast-DDS sends


class UnsupportedEncapsulation(Exception):
    """Not plain little-endian CDR (another RMW or byte order): let rclpy deserialise it instead."""


@dataclass(frozen=True)
class ImageView:
    """The fields of a sensor_msgs/Image that the node reads; `data` is a view of the received bytes."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


@dataclass(frozen=True)
class CompressedImageView:
    """The fields of a sensor_msgs/CompressedImage; `data` is a view of the received bytes."""

    header: Header
    format: str
    data: memoryview


class _Reader:
    """Reads CDR primitives in order; alignment counts from the end of the 4-byte encapsulation header."""

    def __init__(self, raw: bytes, type_name: str) -> None:
        if len(raw) < 4 or raw[:2] != CDR_LITTLE_ENDIAN:
            raise UnsupportedEncapsulation(bytes(raw[:2]).hex())
        self.buffer = memoryview(raw)
        self.position = 4
        self.type_name = type_name

    def _take(self, size: int, align: int) -> int:
        self.position += -(self.position - 4) % align
        start, self.position = self.position, self.position + size
        if self.position > len(self.buffer):
            raise ImageError(f"serialised {self.type_name} is truncated ({len(self.buffer)} bytes)")
        return start

    def uint32(self) -> int:
        return struct.unpack_from("<I", self.buffer, self._take(4, 4))[0]

    def int32(self) -> int:
        return struct.unpack_from("<i", self.buffer, self._take(4, 4))[0]

    def uint8(self) -> int:
        return self.buffer[self._take(1, 1)]

    def string(self) -> str:
        size = self.uint32()  # includes the terminating NUL
        start = self._take(size, 1)
        return bytes(self.buffer[start : start + max(size - 1, 0)]).decode("utf-8", errors="replace")

    def bytes_view(self) -> memoryview:
        size = self.uint32()
        start = self._take(size, 1)
        return self.buffer[start : start + size]

    def header(self) -> Header:
        stamp = Time(sec=self.int32(), nanosec=self.uint32())
        return Header(stamp=stamp, frame_id=self.string())


def read_image(raw: bytes) -> ImageView:
    """Serialised sensor_msgs/Image -> ImageView without copying the pixels; ImageError when malformed."""
    reader = _Reader(raw, "sensor_msgs/Image")
    header = reader.header()
    height, width, encoding = reader.uint32(), reader.uint32(), reader.string()
    is_bigendian, step = reader.uint8(), reader.uint32()
    return ImageView(header, height, width, encoding, is_bigendian, step, reader.bytes_view())


def read_compressed_image(raw: bytes) -> CompressedImageView:
    """Serialised sensor_msgs/CompressedImage -> CompressedImageView; ImageError when malformed."""
    reader = _Reader(raw, "sensor_msgs/CompressedImage")
    header = reader.header()
    return CompressedImageView(header, reader.string(), reader.bytes_view())


def read_camera_message(raw: bytes, compressed: bool) -> ImageView | CompressedImageView | Image | CompressedImage:
    """A serialised camera frame as a message: a zero-copy view, or rclpy's message for other encapsulations.

    ImageError names what is wrong with a malformed one.
    """
    try:
        return read_compressed_image(raw) if compressed else read_image(raw)
    except UnsupportedEncapsulation:
        pass
    message_type = CompressedImage if compressed else Image
    try:
        return deserialize_message(raw, message_type)
    except Exception as exc:  # rclpy raises its own RMW errors for malformed CDR
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ImageError(f"not a valid sensor_msgs/msg/{message_type.__name__} message: {first}") from None


def decode_camera_message(raw: bytes, compressed: bool) -> tuple[Header, np.ndarray]:
    """A serialised sensor_msgs/Image or CompressedImage -> (its header, RGB uint8 [H,W,3]); ImageError when bad.

    The one way the node, `lane-seg bag` and the demo's report turn camera bytes into pixels.
    """
    msg = read_camera_message(raw, compressed)
    return msg.header, compressed_to_rgb(msg) if compressed else image_to_rgb(msg)
