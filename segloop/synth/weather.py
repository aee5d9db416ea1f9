"""Lighting and weather conditions applied to a rendered scene.

- ``day``: bright, a side-light gradient, blue sky.
- ``dusk``: dark and warm, orange-purple sky; lamps and lit windows keep their brightness.
- ``fog``: atmospheric scattering ``I = J t + A (1 - t)`` with ``t = exp(-depth / visibility)``,
  which washes far objects into the airlight.
- ``rain``: dark, desaturated and blue, wet (darker, glossier) ground, rain streaks, blur.

Every condition then gets sensor effects: exposure jitter, optional motion blur, noise.
"""

from __future__ import annotations

import cv2
import numpy as np

SKY_GRADIENTS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "day": ((0.35, 0.55, 0.85), (0.7, 0.82, 0.95)),
    "dusk": ((0.25, 0.2, 0.4), (0.95, 0.55, 0.3)),
    "fog": ((0.72, 0.74, 0.76), (0.8, 0.8, 0.8)),
    "rain": ((0.3, 0.32, 0.36), (0.5, 0.52, 0.55)),
}


def _sky(height: int, width: int, condition: str, rng: np.random.Generator) -> np.ndarray:
    top, bottom = (np.asarray(c, dtype=np.float32) for c in SKY_GRADIENTS[condition])
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    sky = top * (1 - ramp) + bottom * ramp
    clouds = cv2.resize(
        rng.random((4, 8)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    sky = sky + 0.12 * np.clip(clouds, 0, 1)[..., None] * rng.uniform(0.3, 1.0)
    return np.broadcast_to(sky, (height, width, 3))


def apply_condition(
    image: np.ndarray,
    depth: np.ndarray,
    sky_mask: np.ndarray,
    emissive: np.ndarray,
    condition: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Light, weather and sensor effects; returns an HxWx3 uint8 RGB image."""
    if condition not in SKY_GRADIENTS:
        raise ValueError(f"unknown condition {condition!r}; known: {sorted(SKY_GRADIENTS)}")
    height, width = depth.shape
    img = image.astype(np.float32, copy=True)
    img[sky_mask] = _sky(height, width, condition, rng)[sky_mask]
    glow = img[emissive].copy()

    if condition == "day":
        side = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :, None]
        img *= rng.uniform(0.9, 1.15) * (1.0 + rng.uniform(-0.15, 0.15) * side)
    elif condition == "dusk":
        img *= rng.uniform(0.35, 0.55) * np.array([1.12, 0.88, 0.72], dtype=np.float32)
        img[emissive] = glow
    elif condition == "fog":
        visibility = rng.uniform(1.5, 5.0)
        t = np.exp(-np.minimum(depth, 100.0) / visibility)[..., None]
        airlight = rng.uniform(0.65, 0.85)
        img = img * t + airlight * (1.0 - t)
        img = airlight + (img - airlight) * rng.uniform(0.7, 0.9)
    else:  # rain
        grey = img.mean(axis=2, keepdims=True)
        img = 0.55 * img + 0.45 * grey
        img *= rng.uniform(0.5, 0.72) * np.array([0.9, 0.95, 1.08], dtype=np.float32)
        ground = (depth < 5.0) & ~sky_mask
        img[ground] *= 0.8
        img[emissive] = glow * 0.9
        streaks = np.zeros((height, width), dtype=np.float32)
        length = max(int(height * rng.uniform(0.05, 0.12)), 2)
        slant = rng.uniform(-0.3, 0.3)
        for _ in range(int(rng.integers(40, 120) * width / 256)):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            p0 = (int(x), int(y))
            p1 = (int(x + slant * length), int(y + length))
            cv2.line(streaks, p0, p1, float(rng.uniform(0.1, 0.3)), 1)
        img = img + streaks[..., None]
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.1) * width / 256)

    img *= rng.uniform(0.92, 1.08)
    if rng.random() < 0.3:
        k = max(int(rng.uniform(3, 7) * width / 256), 2)
        kernel = np.zeros((k, k), dtype=np.float32)
        kernel[k // 2, :] = 1.0 / k
        img = np.asarray(cv2.filter2D(img, -1, kernel), dtype=np.float32)
    img = np.asarray(cv2.GaussianBlur(img, (0, 0), 0.5 * width / 256), dtype=np.float32)
    img += rng.normal(0.0, rng.uniform(0.005, 0.03), size=img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
