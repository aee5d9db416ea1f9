"""A label-first canvas: every shape is drawn into a label map and an instance map at once.

Appearance (colour, texture strength, depth) is kept per instance, so the RGB image is rendered
after all geometry is placed and the label map is exact by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

SKY_DEPTH = 1e3


@dataclass
class Canvas:
    height: int
    width: int
    label: np.ndarray = field(init=False)
    instance: np.ndarray = field(init=False)
    colors: list[tuple[float, float, float]] = field(default_factory=lambda: [(0.0, 0.0, 0.0)])
    textures: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])
    depths: list[float] = field(default_factory=lambda: [SKY_DEPTH])
    emissive: list[bool] = field(default_factory=lambda: [False])

    def __post_init__(self) -> None:
        self.label = np.full((self.height, self.width), 255, dtype=np.uint8)
        self.instance = np.zeros((self.height, self.width), dtype=np.int32)

    def new_instance(
        self,
        color: tuple[float, float, float],
        texture: tuple[float, float] = (0.05, 0.05),
        depth: float = SKY_DEPTH,
        emissive: bool = False,
    ) -> int:
        """Register an appearance: RGB in [0, 1], (fine, coarse) texture amplitudes, depth."""
        self.colors.append(color)
        self.textures.append(texture)
        self.depths.append(depth)
        self.emissive.append(emissive)
        return len(self.colors) - 1

    def polygon(self, points: np.ndarray, class_id: int, instance: int) -> None:
        pts = np.round(np.asarray(points, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(self.label, [pts], int(class_id))
        cv2.fillPoly(self.instance, [pts], int(instance))

    def rectangle(
        self, x0: float, y0: float, x1: float, y1: float, class_id: int, instance: int
    ) -> None:
        """Axis-aligned box; at least one pixel wide and tall so thin objects survive."""
        xa, xb = sorted((x0, x1))
        ya, yb = sorted((y0, y1))
        xa_i, ya_i = round(xa), round(ya)
        xb_i, yb_i = max(round(xb), xa_i + 1), max(round(yb), ya_i + 1)
        xa_c, xb_c = max(xa_i, 0), min(xb_i, self.width)
        ya_c, yb_c = max(ya_i, 0), min(yb_i, self.height)
        if xa_c >= xb_c or ya_c >= yb_c:
            return
        self.label[ya_c:yb_c, xa_c:xb_c] = class_id
        self.instance[ya_c:yb_c, xa_c:xb_c] = instance

    def circle(self, cx: float, cy: float, radius: float, class_id: int, instance: int) -> None:
        center = (round(cx), round(cy))
        r = max(round(radius), 1)
        cv2.circle(self.label, center, r, int(class_id), thickness=-1)
        cv2.circle(self.instance, center, r, int(instance), thickness=-1)

    def ring(
        self, cx: float, cy: float, radius: float, thickness: float, class_id: int, instance: int
    ) -> None:
        center = (round(cx), round(cy))
        r = max(round(radius), 1)
        t = max(round(thickness), 1)
        cv2.circle(self.label, center, r, int(class_id), thickness=t)
        cv2.circle(self.instance, center, r, int(instance), thickness=t)

    def line(
        self,
        p0: tuple[float, float],
        p1: tuple[float, float],
        thickness: float,
        class_id: int,
        instance: int,
    ) -> None:
        a = (round(p0[0]), round(p0[1]))
        b = (round(p1[0]), round(p1[1]))
        t = max(round(thickness), 1)
        cv2.line(self.label, a, b, int(class_id), thickness=t)
        cv2.line(self.instance, a, b, int(instance), thickness=t)

    def render(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Return (float32 HxWx3 RGB in [0, 1], float32 HxW depth) from the instance map."""
        colors = np.asarray(self.colors, dtype=np.float32)
        textures = np.asarray(self.textures, dtype=np.float32)
        fine = cv2.GaussianBlur(
            rng.standard_normal((self.height, self.width)).astype(np.float32), (0, 0), 0.7
        )
        coarse = _value_noise(rng, self.height, self.width, cells=(6, 12))
        modulation = 1.0 + textures[self.instance, 0] * fine * 2.0
        modulation += textures[self.instance, 1] * coarse * 2.0
        image = colors[self.instance] * modulation[..., None]
        depth = np.asarray(self.depths, dtype=np.float32)[self.instance]
        return np.clip(image, 0.0, 1.0), depth

    def emissive_mask(self) -> np.ndarray:
        return np.asarray(self.emissive, dtype=bool)[self.instance]


def _value_noise(
    rng: np.random.Generator, height: int, width: int, cells: tuple[int, int]
) -> np.ndarray:
    grid = rng.standard_normal(cells).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
