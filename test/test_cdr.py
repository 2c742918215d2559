"""The zero-copy CDR reader gives exactly what rclpy's deserialisation gives, and refuses truncated bytes."""

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from lane_seg_ros.cdr import UnsupportedEncapsulation, read_compressed_image, read_image  # noqa: E402
from lane_seg_ros.conversions import ImageError, array_to_image, image_to_rgb  # noqa: E402


def image_message(frame_id: str, encoding: str, shape: tuple[int, ...], step_padding: int = 0, seed: int = 0) -> Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    msg = array_to_image(pixels, Header(frame_id=frame_id), encoding)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_123, 456_789_012
    if step_padding:  # rows longer than the pixels, as some drivers send them
        rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
        padded = np.zeros((msg.height, msg.step + step_padding), np.uint8)
        padded[:, : msg.step] = rows
        msg.step += step_padding
        msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize("frame_id", ["", "c", "ca", "cam", "camera_optical_frame"])  # every alignment after it
@pytest.mark.parametrize("encoding, shape", [("rgb8", (5, 7, 3)), ("bgr8", (4, 3, 3)), ("mono8", (3, 5)),
                                             ("bgra8", (2, 9, 4))])
def test_image_fields_and_pixels_match_rclpy(frame_id, encoding, shape):
    msg = image_message(frame_id, encoding, shape, step_padding=3)
    view = read_image(serialize_message(msg))
    assert view.header == msg.header
    assert (view.height, view.width, view.encoding, view.is_bigendian, view.step) == (
        msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step)
    assert bytes(view.data) == bytes(msg.data)
    assert np.array_equal(image_to_rgb(view), image_to_rgb(msg))


def test_a_720p_frame_is_read_without_copying_the_pixels():
    raw = serialize_message(image_message("cam", "rgb8", (720, 1280, 3)))
    rgb = image_to_rgb(read_image(raw))
    assert rgb.shape == (720, 1280, 3) and not rgb.flags.owndata  # a view into the received bytes
    assert np.shares_memory(rgb, np.frombuffer(raw, np.uint8))


@pytest.mark.parametrize("frame_id", ["", "cam", "front_camera"])
def test_compressed_image_fields_match_rclpy(frame_id):
    msg = CompressedImage(format="jpeg")
    msg.header.frame_id, msg.header.stamp.sec = frame_id, 42
    msg.data = bytes(range(256)) * 3
    view = read_compressed_image(serialize_message(msg))
    assert view.header == msg.header and view.format == "jpeg" and bytes(view.data) == bytes(msg.data)


@pytest.mark.parametrize("cut", [3, 10, 20, 40, -1])
def test_truncated_bytes_are_an_image_error_naming_the_type(cut):
    raw = serialize_message(image_message("cam", "rgb8", (4, 4, 3)))
    with pytest.raises((ImageError, UnsupportedEncapsulation)):
        read_image(raw[:cut])
    if cut >= 4:
        with pytest.raises(ImageError, match=r"serialised sensor_msgs/Image is truncated"):
            read_image(raw[:cut])


def test_other_encapsulations_are_left_to_rclpy():
    raw = bytearray(serialize_message(image_message("cam", "rgb8", (2, 2, 3))))
    raw[1] = 0x00  # big-endian CDR
    with pytest.raises(UnsupportedEncapsulation):
        read_image(bytes(raw))
