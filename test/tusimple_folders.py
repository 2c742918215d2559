"""Small tuSimple-format folders with known lanes, written for tests."""

import json

import cv2
import numpy as np

H_SAMPLES = list(range(160, 720, 10))


def straight_lane(x_bottom, x_top, y_top=300):
    """x at each h_sample of a straight lane from (x_top, y_top) to (x_bottom, 710); -2 above y_top."""
    return [int(round(x_top + (x_bottom - x_top) * (y - y_top) / (710 - y_top))) if y >= y_top else -2
            for y in H_SAMPLES]


def write_folder(root, frames, name="label_data_test.json"):
    """frames: list of lane lists; writes a grey 1280x720 JPEG per frame with the lanes painted white."""
    lines = []
    for i, lanes in enumerate(frames):
        raw = f"clips/0/{i}/20.jpg"
        image = np.full((720, 1280, 3), 90, np.uint8)
        for lane in lanes:
            pts = np.array([(x, y) for x, y in zip(lane, H_SAMPLES) if x >= 0], np.int32)
            cv2.polylines(image, [pts], False, (255, 255, 255), 12)
        (root / raw).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / raw), image)
        lines.append(json.dumps({"lanes": lanes, "h_samples": H_SAMPLES, "raw_file": raw}))
    (root / name).write_text("\n".join(lines) + "\n")
    return root / name
