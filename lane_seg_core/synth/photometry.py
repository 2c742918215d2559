"""Photometry: exposure, contrast, gamma, white balance, glare, vignetting, blur, motion blur, noise, JPEG quality."""

from __future__ import annotations

from dataclasses import replace
from statistics import NormalDist

import cv2
import numpy as np

from .layout import mean_wear_factor
from .scene import IMG_H, IMG_W, LaneLine, Lighting, Road, SynthConfig, luma


def sample_lighting(rng: np.random.Generator, config: SynthConfig) -> Lighting:
    """Global brightness/contrast/gamma/colour cast, sensor noise and occasional blur."""
    return Lighting(
        brightness=rng.uniform(-0.15, 0.12),
        contrast=rng.uniform(0.7, 1.2),
        gamma=float(np.exp(rng.uniform(np.log(0.7), np.log(1.45)))),
        gain_bgr=(rng.uniform(0.93, 1.07), rng.uniform(0.95, 1.05), rng.uniform(0.93, 1.07)),
        noise_sigma=rng.uniform(1.0, config.max_noise_sigma),
        blur_sigma=rng.uniform(0.5, 1.3) if rng.random() < config.blur_prob else 0.0,
    )


def sample_camera_effects(rng: np.random.Generator, lighting: Lighting) -> Lighting:
    """Harsher exposure and white balance, sun glare, vignetting, motion blur and a lower JPEG quality."""
    return replace(
        lighting,
        brightness=rng.uniform(-0.28, 0.25),
        contrast=rng.uniform(0.55, 1.35),
        gain_bgr=(rng.uniform(0.82, 1.15), rng.uniform(0.92, 1.08), rng.uniform(0.82, 1.15)),
        vignette=rng.uniform(0.0, 0.5) if rng.random() < 0.5 else 0.0,
        glare=rng.uniform(0.2, 0.8) if rng.random() < 0.2 else 0.0,
        glare_xy=(rng.uniform(0, IMG_W), rng.uniform(-100, 300)),
        motion_blur=rng.uniform(3, 12) if rng.random() < 0.2 else 0.0,
        jpeg_quality=int(rng.integers(35, 96)),
    )


def sample_visible_lighting(
    rng: np.random.Generator, config: SynthConfig, road: Road, lines: tuple[LaneLine, ...]
) -> Lighting:
    """Random lighting under which every line keeps `config.min_lit_contrast` against the asphalt."""
    for _ in range(20):
        lighting = sample_lighting(rng, config)
        if config.effects_prob > 0 and rng.random() < config.effects_prob:
            lighting = sample_camera_effects(rng, lighting)
        if min(lit_contrast(lighting, road, line) for line in lines) >= config.min_lit_contrast:
            return lighting
    return replace(lighting, brightness=0.0, contrast=1.0, gamma=1.0)


def lit_contrast(lighting: Lighting, road: Road, line: LaneLine) -> float:
    """Luminance step between a line's (worn) paint and bare asphalt after the lighting curve."""
    asphalt = np.asarray(road.asphalt_bgr, float)
    coverage = line.opacity * mean_wear_factor(road)
    painted = asphalt + coverage * (np.asarray(line.color_bgr, float) - asphalt)
    lit_paint, lit_road = tone_curve(lighting, np.stack([painted, asphalt]))
    return luma(tuple(lit_paint)) - luma(tuple(lit_road))


def noise_table(sigma: float) -> np.ndarray:
    """uint8 LUT mapping uniform bytes to 128 + Gaussian noise of the given sigma (inverse CDF)."""
    q = [NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)]
    return np.clip(np.round(128 + sigma * np.asarray(q)), 0, 255).astype(np.uint8)


def tone_curve(lighting: Lighting, bgr: np.ndarray) -> np.ndarray:
    """Global brightness/contrast/gamma/colour cast applied to BGR values [..., 3] on the 0..255 scale."""
    x = np.clip((np.asarray(bgr, float) / 255 - 0.5) * lighting.contrast + 0.5 + lighting.brightness, 0, 1)
    return np.clip(x**lighting.gamma * np.asarray(lighting.gain_bgr, float), 0, 1) * 255


def apply_lighting(image: np.ndarray, lighting: Lighting, rng: np.random.Generator) -> np.ndarray:
    """Brightness/contrast/gamma/colour cast via a LUT, then optional blur and sensor noise (in place)."""
    lut = tone_curve(lighting, np.repeat(np.arange(256, dtype=np.float64)[:, None], 3, axis=1))
    out = cv2.LUT(image, np.round(lut).astype(np.uint8).reshape(256, 1, 3), dst=image)
    if lighting.blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), lighting.blur_sigma, dst=out)
    if lighting.noise_sigma > 0:  # luminance noise, the same offset on all three channels of a pixel
        noise = rng.integers(0, 256, out.shape[:2], dtype=np.uint8)
        noise = cv2.LUT(noise, noise_table(lighting.noise_sigma), dst=noise)
        out = cv2.addWeighted(out, 1.0, cv2.cvtColor(noise, cv2.COLOR_GRAY2BGR), 1.0, -128.0, dst=out)
    return out


# Dataset writer


def apply_optics(image: np.ndarray, lighting: Lighting) -> np.ndarray:
    """Lens and scene effects before the sensor: sun glare (a bright veil), vignetting and vertical motion blur."""
    if lighting.glare <= 0 and lighting.vignette <= 0 and lighting.motion_blur <= 0:
        return image
    out = image.astype(np.float32)
    ys, xs = np.mgrid[0:IMG_H:4, 0:IMG_W:4].astype(np.float32)
    if lighting.glare > 0:
        gx, gy = lighting.glare_xy
        d2 = ((xs - gx) ** 2 + (ys - gy) ** 2) / (0.35 * IMG_W) ** 2
        veil = cv2.resize(lighting.glare * np.exp(-d2) + 0.15 * lighting.glare, (IMG_W, IMG_H))
        out += veil[..., None] * (255.0 - out)
    if lighting.vignette > 0:
        r2 = ((xs - IMG_W / 2) / (IMG_W / 2)) ** 2 + ((ys - IMG_H / 2) / (IMG_H / 2)) ** 2
        out *= cv2.resize(1 - lighting.vignette * np.clip(r2 / 2, 0, 1) ** 1.5, (IMG_W, IMG_H))[..., None]
    if lighting.motion_blur > 0:
        n = max(int(round(lighting.motion_blur)), 2)
        out = cv2.blur(out, (1, n))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
