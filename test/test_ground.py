"""Ground plane: pixels on a flat road -> metres (x forward, y left), checked against closed forms written apart."""

import math

import numpy as np
import pytest

from lane_seg_core.ground import GroundPlane

FX, FY, CX, CY = 1000.0, 980.0, 640.5, 360.25  # fx != fy and an off-centre principal point catch swapped terms
K = [[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]]
HEIGHT, PITCH = 1.4, 0.06


def ray_hits_road(u, v, height, pitch, x_offset=0.0, y_offset=0.0):
    """Independent of the module: cast the pixel's ray in the vehicle frame and intersect it with z = 0."""
    c, s = math.cos(pitch), math.sin(pitch)
    right, down, ahead = np.array([0.0, -1.0, 0.0]), np.array([-s, 0.0, -c]), np.array([c, 0.0, -s])  # camera axes
    ray = (u - CX) / FX * right + (v - CY) / FY * down + ahead
    if ray[2] >= 0:
        return None  # at or above the horizon
    centre = np.array([x_offset, y_offset, height])
    hit = centre + (height / -ray[2]) * ray
    assert abs(hit[2]) < 1e-9
    return hit[:2]


@pytest.mark.parametrize("pitch", [0.06, 0.3])
def test_centre_column_matches_the_textbook_distance(pitch):
    x_offset = 1.5
    plane = GroundPlane.from_camera(K, HEIGHT, pitch, x_offset=x_offset, max_distance=1e6)
    horizon = CY - FY * math.tan(pitch)
    rows = np.array([horizon + 5.0, horizon + 40.0, CY, CY + 100.0, 719.0])
    ground, valid = plane.to_ground(np.stack([np.full_like(rows, CX), rows], axis=1))
    assert valid.all()
    expected = HEIGHT / np.tan(pitch + np.arctan((rows - CY) / FY)) + x_offset
    np.testing.assert_allclose(ground[:, 0], expected, rtol=1e-9)
    np.testing.assert_allclose(ground[:, 1], 0.0, atol=1e-9)
    assert np.all(np.diff(ground[:, 0]) < 0)  # lower in the image = closer


def test_horizon_is_above_the_image_centre_when_pitched_down():
    plane = GroundPlane.from_camera(K, HEIGHT, PITCH, max_distance=1e9)
    horizon = CY - FY * math.tan(PITCH)
    assert horizon < CY
    _, valid = plane.to_ground(np.array([[CX, horizon + 0.5], [CX, horizon - 0.5]]))
    assert valid.tolist() == [True, False]


def test_right_of_centre_is_negative_y_and_matches_the_ray_intersection():
    plane = GroundPlane.from_camera(K, HEIGHT, PITCH, x_offset=1.2, y_offset=-0.3)
    ground, valid = plane.to_ground(np.array([[CX + 200.0, 600.0], [CX - 200.0, 600.0], [CX, 600.0]]))
    assert valid.all()
    assert ground[0, 1] < -0.3 < ground[1, 1]  # right of the camera is -y, left is +y
    np.testing.assert_allclose(ground[2, 1], -0.3, atol=1e-12)
    np.testing.assert_allclose(ground[0, 0], ground[1, 0], rtol=1e-12)  # mirror pixels, same row -> same distance

    rng = np.random.default_rng(0)
    for pitch in (PITCH, 0.25):
        plane = GroundPlane.from_camera(K, HEIGHT, pitch, x_offset=1.2, y_offset=-0.3, max_distance=1e6)
        horizon = CY - FY * math.tan(pitch)
        pixels = np.stack([rng.uniform(0, 1280, 200), rng.uniform(horizon + 2.0, 720, 200)], axis=1)
        ground, valid = plane.to_ground(pixels)
        assert valid.all()
        expected = np.array([ray_hits_road(u, v, HEIGHT, pitch, 1.2, -0.3) for u, v in pixels])
        np.testing.assert_allclose(ground, expected, rtol=1e-9, atol=1e-9)


def test_negative_pitch_still_sees_the_road_below_the_horizon():
    pitch = -0.05  # looking slightly up: the horizon is below the image centre
    plane = GroundPlane.from_camera(K, HEIGHT, pitch, max_distance=1e6)
    ground, valid = plane.to_ground(np.array([[900.0, 700.0], [CX, CY]]))
    assert valid.tolist() == [True, False]
    np.testing.assert_allclose(ground[0], ray_hits_road(900.0, 700.0, HEIGHT, pitch), rtol=1e-9)


def test_round_trips():
    plane = GroundPlane.from_camera(K, HEIGHT, 0.1, x_offset=1.5, y_offset=0.2)
    rng = np.random.default_rng(1)
    horizon = CY - FY * math.tan(0.1)
    pixels = np.stack([rng.uniform(0, 1280, 300), rng.uniform(horizon + 25.0, 720, 300)], axis=1)
    ground, valid = plane.to_ground(pixels)
    assert valid.all()
    np.testing.assert_allclose(plane.to_image(ground), pixels, atol=1e-7)

    points = np.stack([rng.uniform(5.0, 70.0, 300), rng.uniform(-10.0, 10.0, 300)], axis=1)
    back, valid = plane.to_ground(plane.to_image(points))
    assert valid.all()
    np.testing.assert_allclose(back, points, atol=1e-9)


def test_above_horizon_too_far_and_behind_are_invalid_not_errors():
    plane = GroundPlane.from_camera(K, HEIGHT, PITCH, x_offset=1.5, max_distance=30.0)
    near_row = CY + FY * math.tan(math.atan(HEIGHT / 29.0) - PITCH)  # 29 m from the camera, 30.5 m from base_link
    far_row = CY + FY * math.tan(math.atan(HEIGHT / 40.0) - PITCH)  # 40 m ahead of the camera
    pixels = np.array([[CX, near_row], [CX, far_row], [CX, 0.0], [100.0, CY - FY * math.tan(PITCH)], [np.nan, 500.0]])
    ground, valid = plane.to_ground(pixels)
    assert valid.tolist() == [True, False, False, False, False]
    np.testing.assert_allclose(ground[0], [30.5, 0.0], atol=1e-9)  # distance counts from the camera, x from base_link
    assert np.isnan(ground[1:]).all()
    assert np.isnan(plane.to_image(np.array([[-5.0, 0.0]]))).all()  # behind the camera: no pixel

    steep = GroundPlane.from_camera(K, HEIGHT, 1.3, max_distance=100.0)  # sees the road behind its own foot point
    ground, valid = steep.to_ground(np.array([[CX, 700.0], [CX, CY]]))
    assert valid.tolist() == [False, True]  # row 700 is behind the camera's foot point: negative forward distance
    assert ray_hits_road(CX, 700.0, HEIGHT, 1.3)[0] < 0


def test_empty_input():
    plane = GroundPlane.from_camera(K, HEIGHT, PITCH)
    ground, valid = plane.to_ground(np.zeros((0, 2)))
    assert ground.shape == (0, 2) and ground.dtype == np.float64 and valid.shape == (0,) and valid.dtype == bool
    assert plane.to_image(np.zeros((0, 2))).shape == (0, 2)


def test_from_homography_and_flat_intrinsics_give_the_same_mapping():
    plane = GroundPlane.from_camera(K, HEIGHT, PITCH, x_offset=1.5, y_offset=0.1)
    flat = GroundPlane.from_camera(np.ravel(K).tolist(), HEIGHT, PITCH, x_offset=1.5, y_offset=0.1)
    pixels = np.array([[100.0, 700.0], [CX, 500.0], [1200.0, 420.0], [CX, 0.0]])
    ground, valid = plane.to_ground(pixels)
    assert valid.tolist() == [True, True, True, False]
    for other in (
        flat,
        GroundPlane.from_homography(plane.homography, camera_x=1.5),
        GroundPlane.from_homography(-2.5 * plane.homography, camera_x=1.5),  # scale and sign are free
        GroundPlane.from_homography(plane.homography / plane.homography[2, 2], camera_x=1.5),  # cv2-style H[2,2]=1
    ):
        g, v = other.to_ground(pixels)
        assert v.tolist() == valid.tolist()
        np.testing.assert_allclose(g[v], ground[valid], rtol=1e-12)


def test_homography_is_read_only():
    plane = GroundPlane.from_camera(K, HEIGHT, PITCH)
    with pytest.raises(ValueError):
        plane.homography[0, 0] = 1.0


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(height=-1.2), ["GroundPlane.height", "> 0 m", "-1.2"]),
        (dict(height=0.0), ["GroundPlane.height", "> 0 m"]),
        (dict(height=float("nan")), ["GroundPlane.height", "finite"]),
        (dict(pitch=math.pi / 2), ["GroundPlane.pitch", "(-pi/2, pi/2)"]),
        (dict(pitch=-2.0), ["GroundPlane.pitch", "(-pi/2, pi/2)"]),
        (dict(pitch=float("inf")), ["GroundPlane.pitch", "finite"]),
        (dict(intrinsics=[1.0] * 8), ["GroundPlane.intrinsics", "9 values"]),
        (dict(intrinsics=np.eye(4)), ["GroundPlane.intrinsics", "shape"]),
        (dict(intrinsics=[0.0] * 9), ["GroundPlane.intrinsics", "fx and fy must be > 0"]),  # uncalibrated CameraInfo
        (dict(intrinsics=[[FX, 0, CX], [0, -FY, CY], [0, 0, 1]]), ["GroundPlane.intrinsics", "fy=-980"]),
        (dict(intrinsics=[[FX, 0, CX], [0, FY, CY], [0, 0, 2]]), ["GroundPlane.intrinsics", "0 0 1"]),
        (dict(intrinsics=[[FX, 0, np.nan], [0, FY, CY], [0, 0, 1]]), ["GroundPlane.intrinsics", "finite"]),
        (dict(intrinsics="K"), ["GroundPlane.intrinsics"]),
        (dict(x_offset=float("nan")), ["GroundPlane.x_offset", "finite"]),
        (dict(y_offset=float("inf")), ["GroundPlane.y_offset", "finite"]),
        (dict(max_distance=0.0), ["GroundPlane.max_distance", "> 0 m"]),
        (dict(max_distance=-5), ["GroundPlane.max_distance", "> 0 m", "-5"]),
    ],
)
def test_from_camera_errors_name_the_parameter(kwargs, words):
    args = dict(intrinsics=K, height=HEIGHT, pitch=PITCH) | kwargs
    with pytest.raises(ValueError) as err:
        GroundPlane.from_camera(args.pop("intrinsics"), args.pop("height"), args.pop("pitch"), **args)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "homography, kwargs, words",
    [
        (np.eye(3)[:2], {}, ["GroundPlane.homography", "3x3"]),
        (np.array([[1, 0, 0], [0, 1, 0], [0, 0, np.inf]]), {}, ["GroundPlane.homography", "finite"]),
        (np.array([[1, 2, 3], [2, 4, 6], [0, 0, 1.0]]), {}, ["GroundPlane.homography", "singular"]),
        (np.zeros((3, 3)), {}, ["GroundPlane.homography", "singular"]),
        (np.eye(3), dict(max_distance=-1.0), ["GroundPlane.max_distance", "> 0 m"]),
        (np.eye(3), dict(camera_x=float("nan")), ["GroundPlane.camera_x", "finite"]),
    ],
)
def test_from_homography_errors_name_the_parameter(homography, kwargs, words):
    with pytest.raises(ValueError) as err:
        GroundPlane.from_homography(homography, **kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("method, name", [("to_ground", "points"), ("to_image", "ground")])
@pytest.mark.parametrize("bad", [np.zeros(2), np.zeros((3, 3)), np.zeros((2, 2, 2))])
def test_point_arrays_must_be_n_by_2(method, name, bad):
    plane = GroundPlane.from_camera(K, HEIGHT, PITCH)
    with pytest.raises(ValueError, match=rf"GroundPlane\.{name} must be an \[N,2\] array"):
        getattr(plane, method)(bad)
