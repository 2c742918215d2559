"""Pictures of results: lanes drawn over a copy of the image, contact sheets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from .postprocess import Lane

if TYPE_CHECKING:
    from .inference import Detection

# Distinct RGB colours, in the order lane_colour gives them out: the ego lane's left and right lines first.
PALETTE = np.array(
    [(230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
     (145, 30, 180), (70, 240, 240), (240, 50, 230)], dtype=np.uint8,
)


def lane_colour(position: int) -> tuple[int, int, int]:
    """RGB colour of a lane by its place beside the vehicle (Lane.position: -1 and 1 are the ego lane's lines).

    Keyed to the position, not the per-image id, so a lane keeps its colour when another appears further out.
    """
    index = 2 * abs(position) - (2 if position < 0 else 1)  # -1, 1, -2, 2, ... -> 0, 1, 2, 3, ...
    return tuple(int(c) for c in PALETTE[index % len(PALETTE)])


def draw_lanes(
    image: np.ndarray, lanes: Sequence[Lane], truth: Sequence[Sequence[tuple[float, float]]] = (), thickness: int = 4
) -> np.ndarray:
    """A copy of an RGB image [H,W,3] with lane polylines (and ground-truth points as white dots)."""
    out = image.copy()
    for points in truth:
        for x, y in points:
            cv2.circle(out, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1, cv2.LINE_AA)
    for lane in lanes:
        pts = np.round(lane.points).astype(np.int32)
        colour = lane_colour(lane.position)
        cv2.polylines(out, [pts], False, colour, thickness, cv2.LINE_AA)
        x, y = pts[0]
        cv2.putText(out, str(lane.id), (int(x) + 6, int(y) - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.9, colour, 2)
    return out


def tint_lanes(image: np.ndarray, instance_mask: np.ndarray, lanes: Sequence[Lane], alpha: float = 0.45) -> np.ndarray:
    """A copy of an RGB image [H,W,3] with the pixels of each lane (instance_mask [H,W] == its id) in its colour."""
    if instance_mask.shape != image.shape[:2]:
        raise ValueError(f"instance mask {instance_mask.shape} does not match the image {image.shape[:2]}")
    palette = np.zeros((256, 3), np.float32)
    for lane in lanes:
        palette[lane.id] = lane_colour(lane.position)
    tinted = image.copy()
    pixels = instance_mask > 0
    blend = (1.0 - alpha) * image[pixels].astype(np.float32) + alpha * palette[instance_mask[pixels]]
    tinted[pixels] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return tinted


def draw_detection(image: np.ndarray, detection: "Detection", alpha: float = 0.45, thickness: int = 4) -> np.ndarray:
    """A copy of an RGB image [H,W,3]: lane pixels (instance_mask [H,W]) tinted in lane colours, polylines and ids."""
    return draw_lanes(tint_lanes(image, detection.instance_mask, detection.lanes, alpha), detection.lanes,
                      thickness=thickness)


def contact_sheet(images: Sequence[np.ndarray], columns: int = 3, tile_width: int = 640) -> np.ndarray:
    """Tile RGB images of any size into one picture, each scaled to `tile_width`."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    tiles = [cv2.resize(im, (tile_width, round(im.shape[0] * tile_width / im.shape[1])), interpolation=cv2.INTER_AREA)
             for im in images]
    tile_height = max(t.shape[0] for t in tiles)
    rows = -(-len(tiles) // columns)
    sheet = np.zeros((rows * tile_height, columns * tile_width, 3), np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * tile_height : r * tile_height + tile.shape[0], c * tile_width : (c + 1) * tile_width] = tile
    return sheet
