"""One procedural street scene with its trainId label map.

Geometry is a pinhole street: ground points at depth ``1/s`` project to row
``horizon + (H - horizon) * s`` and converge on the vanishing point; object sizes scale with
``s * W`` pixels per world unit. Objects are drawn far to near, so nearer ones occlude farther
ones and the label map stays exact. Class frequencies are long-tailed like Cityscapes: road,
building, vegetation, sky and car dominate; poles, signs, lights, people, riders and
two-wheelers are small and rare. Thin objects keep a minimum width of ``W / 128`` pixels
(2 px at the default 256-pixel width) so every class stays learnable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segloop.synth import palette
from segloop.synth.canvas import Canvas
from segloop.synth.weather import apply_condition

(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY,
 PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)  # fmt: skip

S_NEAR = 1.6  # ground extends below the frame's bottom row


@dataclass(frozen=True)
class Frame:
    """A rendered frame: RGB uint8 image, uint8 trainId label map, condition name."""

    image: np.ndarray
    label: np.ndarray
    condition: str


@dataclass(frozen=True)
class Street:
    """Perspective of a straight street; x positions are given at the bottom row (s = 1)."""

    height: int
    width: int
    horizon: float
    vanish_x: float
    road: tuple[float, float]
    walk: tuple[float, float]
    facade: tuple[float, float]

    def y(self, s: float) -> float:
        return self.horizon + (self.height - self.horizon) * s

    def x(self, x_bottom: float, s: float) -> float:
        return self.vanish_x + (x_bottom - self.vanish_x) * s

    def unit(self, s: float) -> float:
        """Pixels per world unit at depth 1/s (one unit = the frame width at s = 1)."""
        return s * self.width

    def thin(self, s: float, world: float) -> float:
        return max(world * self.unit(s), self.width / 128.0)


def _ground_quad(street: Street, x_a: float, x_b: float, s0: float, s1: float) -> np.ndarray:
    return np.array(
        [
            (street.x(x_a, s0), street.y(s0)),
            (street.x(x_b, s0), street.y(s0)),
            (street.x(x_b, s1), street.y(s1)),
            (street.x(x_a, s1), street.y(s1)),
        ]
    )


class SceneBuilder:
    """Places every element of one scene on a :class:`Canvas`."""

    def __init__(self, height: int, width: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.canvas = Canvas(height, width)
        w = float(width)
        vanish_x = w * rng.uniform(0.38, 0.62)
        half_road = w * rng.uniform(0.3, 0.55)
        center = vanish_x + w * rng.uniform(-0.1, 0.1)
        road = (center - half_road, center + half_road)
        walk_w = w * rng.uniform(0.1, 0.3)
        walk = (road[0] - walk_w, road[1] + walk_w)
        setback = w * rng.uniform(0.0, 0.35, size=2) * (rng.random(2) < 0.5)
        self.street = Street(
            height=height,
            width=width,
            horizon=height * rng.uniform(0.36, 0.5),
            vanish_x=vanish_x,
            road=road,
            walk=walk,
            facade=(walk[0] - setback[0], walk[1] + setback[1]),
        )
        self.objects: list[tuple[float, Callable[[], None]]] = []

    # -- background ---------------------------------------------------------------------
    def background(self) -> None:
        c, st, rng = self.canvas, self.street, self.rng
        sky = c.new_instance((0.5, 0.6, 0.8), texture=(0.0, 0.05))
        c.rectangle(0, 0, st.width, st.height, SKY, sky)
        self._skyline()
        ground = c.new_instance(palette.terrain(rng), texture=(0.12, 0.1), depth=3.0)
        c.rectangle(0, st.horizon, st.width, st.height, TERRAIN, ground)
        for side in (0, 1):
            self._facades(side)

        for side, (a, b) in enumerate(((st.walk[0], st.road[0]), (st.road[1], st.walk[1]))):
            walk = c.new_instance(palette.sidewalk(rng), texture=(0.06, 0.06), depth=2.0)
            c.polygon(_ground_quad(st, a, b, 0.0, S_NEAR), SIDEWALK, walk)
            curb_x = b if side == 0 else a
            curb = c.new_instance(palette.grey(rng, (0.55, 0.75)), texture=(0.03, 0.0))
            c.polygon(
                _ground_quad(st, curb_x - 0.012 * st.width, curb_x + 0.012 * st.width, 0, S_NEAR),
                SIDEWALK,
                curb,
            )
        road = c.new_instance(palette.road(rng), texture=(0.07, 0.08), depth=2.0)
        c.polygon(_ground_quad(st, st.road[0], st.road[1], 0.0, S_NEAR), ROAD, road)
        self._road_markings()
        for side in (0, 1):
            if rng.random() < 0.45:
                self._low_barrier(side, FENCE if rng.random() < 0.5 else WALL)

    def _skyline(self) -> None:
        c, st, rng = self.canvas, self.street, self.rng
        x = 0.0
        while x < st.width:
            span = st.width * rng.uniform(0.04, 0.15)
            top = st.horizon - st.height * rng.uniform(0.02, 0.16)
            if rng.random() < 0.65:
                inst = c.new_instance(palette.facade(rng), texture=(0.04, 0.1), depth=30.0)
                c.rectangle(x, top, x + span, st.horizon + 1, BUILDING, inst)
            else:
                inst = c.new_instance(palette.vegetation(rng), texture=(0.3, 0.1), depth=30.0)
                c.polygon(self._bumpy(x, x + span, st.horizon + 1, top), VEGETATION, inst)
            x += span

    def _bumpy(self, x0: float, x1: float, base: float, top: float) -> np.ndarray:
        n = max(int((x1 - x0) / max(self.street.width / 64, 1.0)), 3)
        xs = np.linspace(x0, x1, n)
        tops = top + (base - top) * self.rng.uniform(0.0, 0.35, size=n)
        return np.array([(x0, base), *zip(xs, tops, strict=True), (x1, base)])

    def _facades(self, side: int) -> None:
        st, rng = self.street, self.rng
        base_x = st.facade[side]
        depth = 1.0 / S_NEAR
        while depth < 30.0:
            length = rng.uniform(0.4, 2.5) * (1.0 + depth / 6.0)
            s_near, s_far = 1.0 / depth, 1.0 / (depth + length)
            kind = rng.choice(3, p=[0.62, 0.26, 0.12])
            if kind == 0:
                self._building(base_x, s_near, s_far, depth)
            elif kind == 1:
                self._tree_row(base_x, s_near, s_far, depth)
            depth += length

    def _facade_point(
        self, base_x: float, s_near: float, s_far: float, u: float, height: float
    ) -> tuple[float, float]:
        """A point on a vertical facade: u in [0, 1] from near to far, height in world units."""
        s = 1.0 / ((1 - u) / s_near + u / s_far)
        return self.street.x(base_x, s), self.street.y(s) - height * self.street.unit(s)

    def _building(self, base_x: float, s_near: float, s_far: float, depth: float) -> None:
        c, rng = self.canvas, self.rng
        height = rng.uniform(0.2, 1.1)
        color = palette.facade(rng)
        inst = c.new_instance(color, texture=(0.05, 0.12), depth=depth)
        quad = [
            self._facade_point(base_x, s_near, s_far, u, h)
            for u, h in ((0, 0), (1, 0), (1, height), (0, height))
        ]
        c.polygon(np.array(quad), BUILDING, inst)
        width_px = abs(quad[0][0] - quad[1][0])
        if width_px < 8:
            return
        lit = self.rng.random() < 0.3
        dark = c.new_instance(palette.darker(color, rng.uniform(0.25, 0.5)), (0.05, 0.0), depth)
        glow = c.new_instance((0.95, 0.85, 0.5), (0.05, 0.0), depth, emissive=True)
        cols = max(int(width_px / 10), 1)
        rows = max(int(height / 0.08), 1)
        for i in range(cols):
            for j in range(rows):
                if rng.random() < 0.15:
                    continue
                u0, u1 = (i + 0.25) / cols, (i + 0.75) / cols
                h0, h1 = (j + 0.3) * height / rows, (j + 0.75) * height / rows
                window = [
                    self._facade_point(base_x, s_near, s_far, u, h)
                    for u, h in ((u0, h0), (u1, h0), (u1, h1), (u0, h1))
                ]
                c.polygon(np.array(window), BUILDING, glow if lit and rng.random() < 0.4 else dark)

    def _tree_row(self, base_x: float, s_near: float, s_far: float, depth: float) -> None:
        c, rng = self.canvas, self.rng
        height = rng.uniform(0.12, 0.5)
        inst = c.new_instance(palette.vegetation(rng), texture=(0.35, 0.15), depth=depth)
        n = 12
        points = [self._facade_point(base_x, s_near, s_far, u, 0.0) for u in (0.0, 1.0)]
        for u in np.linspace(1.0, 0.0, n):
            points.append(
                self._facade_point(base_x, s_near, s_far, u, height * rng.uniform(0.6, 1.2))
            )
        c.polygon(np.array(points), VEGETATION, inst)

    def _road_markings(self) -> None:
        c, st, rng = self.canvas, self.street, self.rng
        paint = c.new_instance(palette.grey(rng, (0.7, 0.9)), texture=(0.05, 0.0), depth=2.0)
        lanes = int(rng.integers(2, 4))
        for k in range(1, lanes):
            x_mid = st.road[0] + (st.road[1] - st.road[0]) * k / lanes
            half = 0.008 * st.width
            depth = 1.0 / S_NEAR
            while depth < 25:
                s0, s1 = 1.0 / depth, 1.0 / (depth + 0.35)
                c.polygon(_ground_quad(st, x_mid - half, x_mid + half, s1, s0), ROAD, paint)
                depth += 0.8

    def _low_barrier(self, side: int, class_id: int) -> None:
        c, st, rng = self.canvas, self.street, self.rng
        base_x = st.walk[side]
        d0 = rng.uniform(1.0 / S_NEAR, 4.0)
        d1 = d0 + rng.uniform(1.0, 8.0)
        s_near, s_far = 1.0 / d0, 1.0 / d1
        height = rng.uniform(0.05, 0.14)
        color = palette.fence(rng) if class_id == FENCE else palette.wall(rng)
        inst = c.new_instance(color, texture=(0.06, 0.08), depth=d0)
        quad = [
            self._facade_point(base_x, s_near, s_far, u, h)
            for u, h in ((0, 0), (1, 0), (1, height), (0, height))
        ]
        c.polygon(np.array(quad), class_id, inst)
        if class_id == FENCE:
            bars = c.new_instance(palette.darker(color, 0.45), texture=(0.05, 0.0), depth=d0)
            for u in np.linspace(0.0, 1.0, 24):
                p0 = self._facade_point(base_x, s_near, s_far, u, 0.0)
                p1 = self._facade_point(base_x, s_near, s_far, u, height)
                c.line(p0, p1, st.width / 256.0, FENCE, bars)
            top0 = self._facade_point(base_x, s_near, s_far, 0.0, height)
            top1 = self._facade_point(base_x, s_near, s_far, 1.0, height)
            c.line(top0, top1, st.width / 128.0, FENCE, bars)

    # -- objects ------------------------------------------------------------------------
    def populate(self) -> None:
        rng = self.rng
        counts = {
            self._car: rng.poisson(2.6),
            self._truck: rng.poisson(0.35),
            self._bus: rng.poisson(0.25),
            self._person: rng.poisson(1.3),
            self._rider: rng.poisson(0.4),
            self._parked_two_wheeler: rng.poisson(0.45),
            self._pole: rng.poisson(3.2),
        }
        for place, n in counts.items():
            for _ in range(int(n)):
                place()
        if rng.random() < 0.06:
            self._train()
        for _, draw in sorted(self.objects, key=lambda item: -item[0]):
            draw()

    def _depth_s(self, s_min: float = 0.1, s_max: float = 1.05) -> float:
        return float(self.rng.uniform(s_min, s_max) ** 1.3)

    def _on_road(self, s: float, u: float) -> float:
        st = self.street
        return st.x(st.road[0] + (st.road[1] - st.road[0]) * (u + 1) / 2, s)

    def _on_walk(self, s: float, side: int, u: float) -> float:
        st = self.street
        a, b = (st.walk[0], st.road[0]) if side == 0 else (st.road[1], st.walk[1])
        return st.x(a + (b - a) * u, s)

    def _add(self, s: float, draw: Callable[[], None]) -> None:
        self.objects.append((1.0 / max(s, 1e-3), draw))

    def _box_vehicle(
        self, s: float, cx: float, size: tuple[float, float], class_id: int, style: str
    ) -> None:
        c, st, rng = self.canvas, self.street, self.rng
        unit = st.unit(s)
        w, h = size[0] * unit, size[1] * unit
        y = st.y(s)
        depth = 1.0 / s
        color = palette.vehicle(rng)
        body = c.new_instance(color, texture=(0.04, 0.06), depth=depth)
        dark = c.new_instance(palette.darker(color, 0.2), texture=(0.03, 0.0), depth=depth)
        glass = c.new_instance(palette.grey(rng, (0.08, 0.22)), texture=(0.02, 0.05), depth=depth)
        lamp = c.new_instance((0.95, 0.12, 0.1), texture=(0.0, 0.0), depth=depth, emissive=True)
        wheel_h = 0.18 * h if style != "car" else 0.22 * h
        if style == "car":
            body_top = y - 0.55 * h
            c.rectangle(cx - w / 2, body_top, cx + w / 2, y - wheel_h * 0.5, class_id, body)
            cabin = np.array(
                [
                    (cx - 0.42 * w, body_top),
                    (cx + 0.42 * w, body_top),
                    (cx + 0.3 * w, y - h),
                    (cx - 0.3 * w, y - h),
                ]
            )
            c.polygon(cabin, class_id, body)
            window = np.array(
                [
                    (cx - 0.36 * w, body_top - 0.05 * h),
                    (cx + 0.36 * w, body_top - 0.05 * h),
                    (cx + 0.27 * w, y - 0.93 * h),
                    (cx - 0.27 * w, y - 0.93 * h),
                ]
            )
            c.polygon(window, class_id, glass)
        else:
            c.rectangle(cx - w / 2, y - h, cx + w / 2, y - wheel_h * 0.5, class_id, body)
            if style == "bus":
                c.rectangle(
                    cx - 0.45 * w, y - 0.92 * h, cx + 0.45 * w, y - 0.55 * h, class_id, glass
                )
                stripe = c.new_instance(palette.vehicle(rng), (0.03, 0.0), depth)
                c.rectangle(cx - w / 2, y - 0.45 * h, cx + w / 2, y - 0.38 * h, class_id, stripe)
            else:  # truck: ribbed cargo box over a dark chassis, cab roof peeking above
                c.rectangle(cx - w / 2, y - 0.3 * h, cx + w / 2, y - wheel_h * 0.5, class_id, dark)
                for k in range(1, 6):
                    xk = cx - w / 2 + w * k / 6
                    c.line((xk, y - h), (xk, y - 0.32 * h), max(w / 80, 1), class_id, dark)
        for sign in (-1, 1):
            c.rectangle(
                cx + sign * 0.42 * w - 0.06 * w,
                y - wheel_h,
                cx + sign * 0.42 * w + 0.06 * w,
                y,
                class_id,
                dark,
            )
            c.rectangle(
                cx + sign * 0.4 * w - 0.05 * w,
                y - 0.42 * h,
                cx + sign * 0.4 * w + 0.05 * w,
                y - 0.34 * h,
                class_id,
                lamp,
            )

    def _car(self) -> None:
        s = self._depth_s()
        parked = self.rng.random() < 0.3
        u = self.rng.choice([-0.85, 0.85]) if parked else self.rng.uniform(-0.7, 0.7)
        cx = self._on_road(s, float(u))
        size = (self.rng.uniform(0.17, 0.22), self.rng.uniform(0.13, 0.17))
        self._add(s, lambda: self._box_vehicle(s, cx, size, CAR, "car"))

    def _truck(self) -> None:
        s = self._depth_s(0.12, 0.9)
        cx = self._on_road(s, self.rng.uniform(-0.6, 0.6))
        size = (self.rng.uniform(0.22, 0.28), self.rng.uniform(0.24, 0.33))
        self._add(s, lambda: self._box_vehicle(s, cx, size, TRUCK, "truck"))

    def _bus(self) -> None:
        s = self._depth_s(0.12, 0.9)
        cx = self._on_road(s, self.rng.uniform(-0.6, 0.6))
        size = (self.rng.uniform(0.25, 0.3), self.rng.uniform(0.3, 0.36))
        self._add(s, lambda: self._box_vehicle(s, cx, size, BUS, "bus"))

    def _train(self) -> None:
        c, st, rng = self.canvas, self.street, self.rng
        s = float(rng.uniform(0.2, 0.55))

        def draw() -> None:
            unit, y, depth = st.unit(s), st.y(s), 1.0 / s
            x0 = st.x(st.road[0], s) - rng.uniform(0.0, 0.3) * unit
            x1 = x0 + rng.uniform(0.9, 1.6) * unit
            h = 0.34 * unit
            color = palette.vehicle(rng)
            body = c.new_instance(color, texture=(0.03, 0.05), depth=depth)
            glass = c.new_instance(palette.grey(rng, (0.1, 0.25)), (0.02, 0.03), depth)
            c.rectangle(x0, y - h, x1, y - 0.04 * unit, TRAIN, body)
            n = max(int((x1 - x0) / (0.09 * unit)), 2)
            for k in range(n):
                wx = x0 + (x1 - x0) * (k + 0.2) / n
                c.rectangle(wx, y - 0.85 * h, wx + 0.6 * (x1 - x0) / n, y - 0.5 * h, TRAIN, glass)
            c.line(
                (x0 + 0.3 * (x1 - x0), y - h),
                (x0 + 0.45 * (x1 - x0), y - 1.3 * h),
                st.width / 128,
                TRAIN,
                glass,
            )

        self._add(s, draw)

    def _human(self, s: float, cx: float, foot_y: float, class_id: int, scale: float) -> None:
        c, st, rng = self.canvas, self.street, self.rng
        unit = st.unit(s) * scale
        depth = 1.0 / s
        h = rng.uniform(0.15, 0.19) * unit
        w = max(0.045 * unit, st.width / 128)
        shirt = c.new_instance(palette.clothing(rng), (0.05, 0.05), depth)
        pants = c.new_instance(palette.clothing(rng), (0.05, 0.05), depth)
        head = c.new_instance(palette.skin(rng), (0.03, 0.0), depth)
        leg_w = max(w * 0.35, st.width / 256)
        c.rectangle(cx - w / 2, foot_y - 0.45 * h, cx - w / 2 + leg_w, foot_y, class_id, pants)
        c.rectangle(cx + w / 2 - leg_w, foot_y - 0.45 * h, cx + w / 2, foot_y, class_id, pants)
        c.rectangle(cx - w / 2, foot_y - 0.82 * h, cx + w / 2, foot_y - 0.43 * h, class_id, shirt)
        c.circle(cx, foot_y - 0.9 * h, max(0.09 * h, 1.0), class_id, head)

    def _person(self) -> None:
        s = self._depth_s(0.12, 1.05)
        if self.rng.random() < 0.2:
            cx = self._on_road(s, self.rng.uniform(-0.8, 0.8))
        else:
            cx = self._on_walk(s, int(self.rng.integers(2)), self.rng.uniform(0.1, 0.9))
        y = self.street.y(s)
        self._add(s, lambda: self._human(s, cx, y, PERSON, 1.0))

    def _two_wheeler(self, s: float, cx: float, class_id: int) -> tuple[float, float]:
        """Draw a side-view bicycle or motorcycle; return (seat x, seat y)."""
        c, st, rng = self.canvas, self.street, self.rng
        unit, y, depth = st.unit(s), st.y(s), 1.0 / s
        r = 0.032 * unit
        gap = 0.085 * unit
        frame_color = palette.vehicle(rng)
        frame = c.new_instance(frame_color, (0.03, 0.0), depth)
        tyre = c.new_instance(palette.grey(rng, (0.05, 0.15)), (0.02, 0.0), depth)
        back, front = (cx - gap / 2, y - r), (cx + gap / 2, y - r)
        thick = max(0.008 * unit, st.width / 128)
        if class_id == BICYCLE:
            c.ring(*back, r, thick, BICYCLE, tyre)
            c.ring(*front, r, thick, BICYCLE, tyre)
            seat = (cx - gap * 0.1, y - 2.1 * r)
            for p0, p1 in (
                (back, seat),
                (seat, front),
                (back, (cx, y - r)),
                ((cx, y - r), seat),
                (front, (front[0] - 0.2 * r, y - 2.4 * r)),
            ):
                c.line(p0, p1, thick, BICYCLE, frame)
        else:
            c.circle(*back, r, MOTORCYCLE, tyre)
            c.circle(*front, r, MOTORCYCLE, tyre)
            seat = (cx - gap * 0.1, y - 2.0 * r)
            body = np.array(
                [
                    (back[0], y - 1.3 * r),
                    (front[0], y - 1.4 * r),
                    (front[0] - 0.2 * r, y - 2.5 * r),
                    (back[0] + 0.2 * r, y - 2.2 * r),
                ]
            )
            c.polygon(body, MOTORCYCLE, frame)
        return seat

    def _rider(self) -> None:
        s = self._depth_s(0.15, 1.0)
        u = float(self.rng.choice([-1, 1]) * self.rng.uniform(0.55, 0.9))
        cx = self._on_road(s, u)
        kind = BICYCLE if self.rng.random() < 0.6 else MOTORCYCLE

        def draw() -> None:
            seat_x, seat_y = self._two_wheeler(s, cx, kind)
            self._human(s, seat_x, seat_y + 0.05 * self.street.unit(s), RIDER, 0.85)

        self._add(s, draw)

    def _parked_two_wheeler(self) -> None:
        s = self._depth_s(0.2, 1.0)
        cx = self._on_walk(s, int(self.rng.integers(2)), self.rng.uniform(0.1, 0.9))
        kind = BICYCLE if self.rng.random() < 0.55 else MOTORCYCLE

        def draw() -> None:
            self._two_wheeler(s, cx, kind)

        self._add(s, draw)

    def _pole(self) -> None:
        st, rng = self.street, self.rng
        s = self._depth_s(0.1, 1.1)
        side = int(rng.integers(2))
        cx = self._on_walk(s, side, 0.05 if side == 0 else 0.95)
        attachment = rng.choice(3, p=[0.45, 0.32, 0.23])

        def draw() -> None:
            c = self.canvas
            unit, y, depth = st.unit(s), st.y(s), 1.0 / s
            height = rng.uniform(0.35, 0.6) * unit
            metal = c.new_instance(palette.grey(rng, (0.35, 0.7)), (0.04, 0.02), depth)
            width = st.thin(s, 0.012)
            c.rectangle(cx - width / 2, y - height, cx + width / 2, y, POLE, metal)
            top = y - height
            if attachment == 1:
                self._sign(cx, top, s, depth)
            elif attachment == 2:
                self._traffic_light(cx, top, s, depth)

        self._add(s, draw)

    def _sign(self, cx: float, top: float, s: float, depth: float) -> None:
        c, rng, st = self.canvas, self.rng, self.street
        size = max(0.05 * st.unit(s), st.width / 64)
        color = [(0.85, 0.1, 0.1), (0.1, 0.3, 0.8), (0.95, 0.95, 0.95), (0.95, 0.8, 0.1)][
            int(rng.integers(4))
        ]
        plate = c.new_instance(color, (0.03, 0.0), depth)
        shape = int(rng.integers(3))
        if shape == 0:
            c.circle(cx, top + size / 2, size / 2, SIGN, plate)
        elif shape == 1:
            tri = np.array([(cx - size / 2, top + size), (cx + size / 2, top + size), (cx, top)])
            c.polygon(tri, SIGN, plate)
        else:
            c.rectangle(cx - size * 0.7, top, cx + size * 0.7, top + size * 0.8, SIGN, plate)

    def _traffic_light(self, cx: float, top: float, s: float, depth: float) -> None:
        c, rng, st = self.canvas, self.rng, self.street
        w = max(0.028 * st.unit(s), st.width / 85)
        h = 2.6 * w
        housing = c.new_instance(palette.grey(rng, (0.05, 0.2)), (0.03, 0.0), depth)
        c.rectangle(cx - w / 2, top, cx + w / 2, top + h, LIGHT, housing)
        lit = int(rng.integers(3))
        colors = [(1.0, 0.15, 0.1), (1.0, 0.75, 0.1), (0.2, 1.0, 0.4)]
        lamp = c.new_instance(colors[lit], (0.0, 0.0), depth, emissive=True)
        c.circle(cx, top + h * (lit + 0.5) / 3, max(w * 0.3, 1.0), LIGHT, lamp)


def render_frame(seed: int, height: int, width: int, condition: str) -> Frame:
    """Render one deterministic frame from ``seed`` under a lighting/weather ``condition``."""
    rng = np.random.default_rng(seed)
    builder = SceneBuilder(height, width, rng)
    builder.background()
    builder.populate()
    canvas = builder.canvas
    image, depth = canvas.render(rng)
    image_u8 = apply_condition(
        image, depth, canvas.label == SKY, canvas.emissive_mask(), condition, rng
    )
    return Frame(image=image_u8, label=canvas.label.copy(), condition=condition)
