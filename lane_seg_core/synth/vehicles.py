"""Vehicles on the labelled lanes: sampling and drawing box-shaped cars and trucks seen from behind."""

from __future__ import annotations

import numpy as np

from .geometry import fill, haze_color
from .scene import Color, SceneParams, SynthConfig, Vehicle, clip_color


def sample_vehicles(rng: np.random.Generator, params: SceneParams, config: SynthConfig) -> tuple[Vehicle, ...]:
    """0..max_vehicles vehicles in the labelled lanes, never overlapping each other."""
    if rng.random() >= config.vehicle_prob or config.max_vehicles < 1:
        return ()
    lanes = [(a.offset + b.offset) / 2 for a, b in zip(params.lines, params.lines[1:])]
    placed: list[Vehicle] = []
    for _ in range(int(rng.integers(1, config.max_vehicles + 1))):
        lane = lanes[int(rng.integers(len(lanes)))]
        ego_lane = abs(lane) < params.road.lane_width / 2
        truck = rng.random() < 0.25
        vehicle = Vehicle(
            lateral=lane + rng.normal(0, 0.25),
            distance=rng.uniform(13 if ego_lane else 8, 70),
            width=rng.uniform(2.3, 2.55) if truck else rng.uniform(1.65, 1.95),
            height=rng.uniform(3.0, 4.0) if truck else rng.uniform(1.35, 1.9),
            length=rng.uniform(9, 16) if truck else rng.uniform(4.0, 5.0),
            body_bgr=vehicle_color(rng, truck),
            truck=bool(truck),
        )
        clash = any(
            abs(v.lateral - vehicle.lateral) < 2.5
            and vehicle.distance < v.distance + v.length + 3
            and v.distance < vehicle.distance + vehicle.length + 3
            for v in placed
        )
        if not clash and vehicle.distance + vehicle.length < params.road.length:
            placed.append(vehicle)
    return tuple(sorted(placed, key=lambda v: -v.distance))  # far to near = drawing order


def vehicle_color(rng: np.random.Generator, truck: bool) -> Color:
    """A typical car paint or trailer colour (BGR)."""
    palette = [
        (235, 235, 235), (180, 180, 185), (40, 40, 45), (30, 30, 170), (140, 70, 30), (90, 90, 95), (60, 120, 60)
    ]
    if truck and rng.random() < 0.6:
        palette = [(225, 225, 225), (200, 205, 210), (150, 150, 160)]
    base = palette[int(rng.integers(len(palette)))]
    return clip_color(c + rng.normal(0, 8) for c in base)


def draw_vehicle(image: np.ndarray, params: SceneParams, vehicle: Vehicle) -> None:
    """A box vehicle: visible side and roof, rear face with window, lights, plate and wheels."""
    camera = params.camera
    z0, z1 = vehicle.distance, vehicle.distance + vehicle.length
    if z0 <= 0.5:
        return
    x0 = float(params.ground_x(vehicle.lateral, np.float64(z0)))  # centre of the rear face
    x1 = float(params.ground_x(vehicle.lateral, np.float64(z1)))  # centre of the front face
    half, top, base = vehicle.width / 2, vehicle.height, 0.25  # base: ground clearance of the body

    def paint(corners: list[tuple[float, float, float]], colour: Color, k: float = 1.0) -> None:
        """Fill the polygon of camera-frame corners (x, y up, z), hazed and shaded by k."""
        xs, ys, zs = (np.array(c, float) for c in zip(*corners))
        u, v = camera.project(xs, zs, ys)
        fill(image, [np.stack([u, v], 1)], haze_color(params, clip_color(c * k for c in colour), z0))

    def rear(left: float, right: float, low: float, high: float, colour: Color, k: float = 1.0) -> None:
        """Fill a rectangle on the rear face (offsets from its centre, heights above the road)."""
        paint([(x0 + left, low, z0), (x0 + right, low, z0), (x0 + right, high, z0), (x0 + left, high, z0)], colour, k)

    body = vehicle.body_bgr
    if abs(x0) > half:  # the side facing the camera
        sx = -half if x0 > 0 else half
        paint([(x0 + sx, base, z0), (x0 + sx, top, z0), (x1 + sx, top, z1), (x1 + sx, base, z1)], body, 0.72)
    if top < camera.height:  # roof, seen from above
        paint([(x0 - half, top, z0), (x0 + half, top, z0), (x1 + half, top, z1), (x1 - half, top, z1)], body, 1.08)
    for wx in (-(half - 0.35), half - 0.35):  # wheels below the body
        rear(wx - 0.16, wx + 0.16, 0.0, 0.5, (25, 25, 25))
    rear(-half, half, base, top, body, 0.92)
    rear(-half, half, base, base + 0.22, (45, 45, 48))  # bumper
    if vehicle.truck:  # trailer doors: a dark seam; lights low
        rear(-0.02, 0.02, base + 0.3, top - 0.1, body, 0.55)
        light_y = base + 0.3
    else:  # rear window
        paint(
            [(x0 - half * 0.82, top * 0.62, z0), (x0 + half * 0.82, top * 0.62, z0),
             (x0 + half * 0.7, top * 0.93, z0), (x0 - half * 0.7, top * 0.93, z0)],
            (55, 45, 40),
        )
        light_y = top * 0.45
    for lx in (-(half - 0.2), half - 0.2):
        rear(lx - 0.15, lx + 0.15, light_y, light_y + 0.14, (40, 40, 200))
    rear(-0.26, 0.26, base + 0.28, base + 0.40, (225, 228, 230))  # number plate
