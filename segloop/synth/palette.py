"""Appearance sampling: base colours per class, overlapping where real classes are confusable
(road/sidewalk greys, building/wall facades, vegetation/terrain greens, one vehicle paint set
for cars, trucks and buses, one clothing set for people and riders)."""

from __future__ import annotations

import colorsys

import numpy as np

Color = tuple[float, float, float]


def hsv(
    rng: np.random.Generator, h: tuple[float, float], s: tuple[float, float], v: tuple[float, float]
) -> Color:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(*h) % 1.0, rng.uniform(*s), rng.uniform(*v))
    return (r, g, b)


def grey(rng: np.random.Generator, v: tuple[float, float], tint: float = 0.04) -> Color:
    base = rng.uniform(*v)
    shift = rng.uniform(-tint, tint, size=3)
    r, g, b = np.clip(base + shift, 0.0, 1.0)
    return (float(r), float(g), float(b))


def road(rng: np.random.Generator) -> Color:
    return grey(rng, (0.22, 0.42))


def sidewalk(rng: np.random.Generator) -> Color:
    if rng.random() < 0.3:
        return hsv(rng, (0.0, 0.08), (0.15, 0.4), (0.4, 0.6))  # brick / pavers
    return grey(rng, (0.38, 0.62))


def facade(rng: np.random.Generator) -> Color:
    if rng.random() < 0.5:
        return grey(rng, (0.3, 0.8), tint=0.06)
    return hsv(rng, (0.03, 0.14), (0.1, 0.45), (0.35, 0.8))


def wall(rng: np.random.Generator) -> Color:
    return facade(rng) if rng.random() < 0.5 else grey(rng, (0.45, 0.75))


def fence(rng: np.random.Generator) -> Color:
    choice = rng.random()
    if choice < 0.4:
        return grey(rng, (0.3, 0.65))
    if choice < 0.7:
        return hsv(rng, (0.25, 0.42), (0.2, 0.5), (0.2, 0.45))
    return hsv(rng, (0.05, 0.1), (0.3, 0.6), (0.3, 0.55))


def vegetation(rng: np.random.Generator) -> Color:
    return hsv(rng, (0.18, 0.38), (0.35, 0.75), (0.18, 0.5))


def terrain(rng: np.random.Generator) -> Color:
    return hsv(rng, (0.1, 0.3), (0.3, 0.65), (0.35, 0.62))


VEHICLE_PAINTS: tuple[Color, ...] = (
    (0.92, 0.92, 0.92),
    (0.1, 0.1, 0.11),
    (0.55, 0.56, 0.58),
    (0.75, 0.76, 0.78),
    (0.7, 0.08, 0.08),
    (0.1, 0.2, 0.55),
    (0.15, 0.35, 0.2),
    (0.85, 0.75, 0.2),
    (0.35, 0.25, 0.2),
    (0.9, 0.45, 0.1),
)


def vehicle(rng: np.random.Generator) -> Color:
    base = np.asarray(VEHICLE_PAINTS[rng.integers(len(VEHICLE_PAINTS))])
    r, g, b = np.clip(base + rng.uniform(-0.06, 0.06, size=3), 0.0, 1.0)
    return (float(r), float(g), float(b))


def clothing(rng: np.random.Generator) -> Color:
    if rng.random() < 0.4:
        return grey(rng, (0.05, 0.5))
    return hsv(rng, (0.0, 1.0), (0.3, 0.9), (0.2, 0.8))


def skin(rng: np.random.Generator) -> Color:
    return hsv(rng, (0.04, 0.09), (0.25, 0.6), (0.35, 0.9))


def darker(color: Color, factor: float) -> Color:
    r, g, b = (c * factor for c in color)
    return (r, g, b)
