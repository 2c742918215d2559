"""The camera model: lens distortion removed before the ground projection, CameraInfo read as ROS defines it."""

import numpy as np
import pytest

from lane_seg_core.camera import CameraModel, check_camera_matrix
from lane_seg_core.ground import GroundConfig, GroundPlane

K = [1000.0, 0.0, 640.0, 0.0, 1000.0, 360.0, 0.0, 0.0, 1.0]
DISTORTIONS = {
    "plumb_bob": [-0.30, 0.10, 0.001, -0.002, -0.02],
    "rational_polynomial": [-0.30, 0.10, 0.001, -0.002, -0.02, 0.01, 0.0, 0.001],
    "equidistant": [-0.05, 0.01, -0.002, 0.0005],
}
HEIGHT, PITCH = 1.45, 0.06


def road_points() -> np.ndarray:
    """[N,2] metres on the road: two lane lines 3.7 m apart from 5 to 40 m ahead."""
    x = np.linspace(5.0, 40.0, 15)
    return np.concatenate([np.stack([x, np.full_like(x, y)], axis=1) for y in (1.85, -1.85)])


@pytest.mark.parametrize("model", DISTORTIONS)
def test_undistort_inverts_distort_to_a_thousandth_of_a_pixel(model):
    camera = CameraModel(K, model, DISTORTIONS[model], 1280, 720)
    ideal = np.array([[640.0, 360.0], [60.0, 700.0], [1220.0, 30.0], [900.0, 500.0]])
    raw = camera.distort(ideal)
    assert np.abs(raw - ideal).max() > 5  # the lens moves the corners by pixels
    np.testing.assert_allclose(camera.undistort(raw), ideal, atol=1e-3)


@pytest.mark.parametrize("model", DISTORTIONS)
def test_the_ground_plane_of_a_distorted_camera_puts_raw_pixels_back_on_the_road(model):
    camera = CameraModel(K, model, DISTORTIONS[model], 1280, 720)
    plane = GroundPlane.from_camera(camera, HEIGHT, PITCH)
    raw = plane.to_image(road_points())  # what the camera records of the painted lines
    metres, valid = plane.to_ground(raw)
    assert valid.all()
    np.testing.assert_allclose(metres, road_points(), atol=1e-3)
    # the same pixels through K alone land elsewhere: the distortion matters
    pinhole, _ = GroundPlane.from_camera(K, HEIGHT, PITCH).to_ground(raw)
    assert np.nanmax(np.abs(pinhole - road_points())) > 0.15


def test_a_camera_without_distortion_leaves_pixels_alone():
    camera = CameraModel(K, "plumb_bob", [0.0] * 5)
    points = np.array([[10.0, 20.0], [600.5, 400.25]])
    assert not camera.distorted
    np.testing.assert_array_equal(camera.undistort(points), points)
    assert GroundPlane.from_camera(camera, HEIGHT, PITCH).camera is None


def test_rectified_images_use_the_projection_matrix_and_no_distortion():
    p = [800.0, 0.0, 620.0, 0.0, 0.0, 800.0, 350.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    camera = CameraModel.from_camera_info(K, DISTORTIONS["plumb_bob"], "plumb_bob", 1280, 720, p, rectified=True)
    assert not camera.distorted and camera.k[0, 0] == 800.0 and camera.k[1, 2] == 350.0
    raw = CameraModel.from_camera_info(K, DISTORTIONS["plumb_bob"], "plumb_bob", 1280, 720, p)
    assert raw.distorted and raw.k[0, 0] == 1000.0
    with pytest.raises(ValueError, match="rectified images need the 3x4 projection P"):
        CameraModel.from_camera_info(K, [], "", 1280, 720, [], rectified=True)


def test_a_calibration_fits_its_own_image_size_or_any_when_the_size_is_unknown():
    assert CameraModel(K, width=1280, height=720).fits(1280, 720)
    assert not CameraModel(K, width=1920, height=1080).fits(1280, 720)
    assert CameraModel(K).fits(1920, 1080)


@pytest.mark.parametrize("args, message", [
    ((K, "kannala_brandt", [0.1, 0.0, 0.0, 0.0]), "distortion model 'kannala_brandt' is not supported"),
    ((K, "plumb_bob", [0.1, 0.0, 0.0]), "plumb_bob takes 5 coefficients in D, got 3"),
    ((K, "equidistant", [0.1, 0.0, 0.0, 0.0, 0.0]), "equidistant takes 4 coefficients in D, got 5"),
    ((K, "plumb_bob", [float("nan")] * 5), "distortion coefficients must be finite"),
    (([0.0] * 9, "", []), "fx and fy must be > 0 px, got fx=0.0, fy=0.0 (all zeros: the camera is not calibrated)"),
])
def test_unusable_calibrations_are_refused_naming_the_problem(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CameraModel(*args)


def test_the_camera_matrix_check_is_the_same_everywhere():
    """The node, the bag tool and the ground plane all use check_camera_matrix: fx and fy both checked."""
    for k in ([0.0] * 9, [1000.0, 0, 640, 0, 0.0, 360, 0, 0, 1], [1000.0, 0, 640, 0, -5.0, 360, 0, 0, 1]):
        with pytest.raises(ValueError, match="fx and fy must be > 0"):
            check_camera_matrix(k)
        with pytest.raises(ValueError, match="fx and fy must be > 0"):
            GroundConfig(intrinsics=tuple(k))


def test_ground_config_validates_every_field_with_its_range_and_unit():
    for changes, message in [
        (dict(height=0.0), "GroundConfig.height must be in (0, 100] m, got 0.0"),
        (dict(pitch=1.6), "GroundConfig.pitch must be in (-pi/2, pi/2) rad, got 1.6"),
        (dict(max_distance=-1.0), "GroundConfig.max_distance must be in (0, 10000] m, got -1.0"),
        (dict(x_offset=float("nan")), "GroundConfig.x_offset must be in [-100, 100] m, got nan"),
        (dict(homography=(1.0, 2.0)), "GroundConfig.homography must be 9 values (a row-major 3x3 matrix) or empty"),
        (dict(homography=(0.0,) * 9), "GroundPlane.homography must be invertible"),
    ]:
        with pytest.raises(ValueError) as err:
            GroundConfig(**changes)
        assert message in str(err.value), (changes, str(err.value))


def test_ground_config_builds_the_plane_from_the_camera_or_its_own_settings():
    camera = CameraModel(K, "plumb_bob", DISTORTIONS["plumb_bob"], 1280, 720)
    config = GroundConfig(height=HEIGHT, pitch=PITCH)
    assert config.needs_camera and config.plane(None) is None
    plane = config.plane(camera)
    assert plane.camera is camera
    np.testing.assert_allclose(plane.to_ground(plane.to_image(road_points()))[0], road_points(), atol=1e-3)
    with_k = GroundConfig(height=HEIGHT, pitch=PITCH, intrinsics=tuple(K))
    assert not with_k.needs_camera and with_k.plane(camera).camera is None  # its own K, no distortion
    flat = GroundConfig(homography=(0.0, 0.0, 1.0, -0.001, 0.0, 0.64, 0.0, 0.0006, -0.2))
    assert flat.plane(None) is not None
