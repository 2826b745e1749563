"""Deterministic, anti-aliased rendering of shapes-world scenes and single-object reference images.

Shapes are drawn at 4x resolution and downsampled (box filter), which anti-aliases the edges. Each outline is
scaled to fill its bounding box exactly, so the scorer can compare a found object's mask with the same outlines.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

from PIL import Image, ImageDraw

from .world import BACKGROUND, COLOURS, Scene, ShapeObject

SUPERSAMPLE = 4
SIZE_FRACTION = {"small": 0.22, "large": 0.38}  # bounding-box side as a fraction of the canvas
SIZE_JITTER = 0.08  # sizes vary by up to ±8%; two large objects still keep a gap of about 4 px at 64 px


@lru_cache(maxsize=1024)
def outline(shape: str, star_inner: float = 0.42, heart_cleft: float = 5.0, apex: float = 0.5) -> tuple[tuple[float, float], ...]:
    """The shape's outline as polygon points in the unit square (0..1, y down), touching all four sides.

    The keywords vary the geometry as people draw it (the renderer uses the defaults): a star's inner radius as a
    share of its outer one, how deep a heart's cleft is (its curve's cos 2t term), where a triangle's apex sits."""
    if shape == "circle":
        points = [(math.cos(t), math.sin(t)) for t in (2 * math.pi * i / 64 for i in range(64))]
    elif shape == "square":
        points = [(0, 0), (1, 0), (1, 1), (0, 1)]
    elif shape == "triangle":
        points = [(apex, 0), (1, 1), (0, 1)]
    elif shape == "star":
        points = [
            ((1.0 if i % 2 == 0 else star_inner) * math.sin(math.pi * i / 5), -(1.0 if i % 2 == 0 else star_inner) * math.cos(math.pi * i / 5))
            for i in range(10)
        ]
    elif shape == "heart":
        ts = [2 * math.pi * i / 72 for i in range(72)]
        points = [(16 * math.sin(t) ** 3, -(13 * math.cos(t) - heart_cleft * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))) for t in ts]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, y0, w, h = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    return tuple(((x - x0) / w, (y - y0) / h) for x, y in points)


def _draw(draw: ImageDraw.ImageDraw, shape: str, colour: tuple[int, int, int], box: tuple[float, float, float, float]) -> None:
    x0, y0, x1, y1 = (v * SUPERSAMPLE for v in box)
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    else:
        draw.polygon([(x0 + u * (x1 - x0), y0 + v * (y1 - y0)) for u, v in outline(shape)], fill=colour)


def _box(obj: ShapeObject, centre: tuple[float, float], canvas: int, rng: random.Random) -> tuple[float, float, float, float]:
    side = SIZE_FRACTION[obj.size] * canvas * rng.uniform(1 - SIZE_JITTER, 1 + SIZE_JITTER)
    cx, cy = centre
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def _canvas(objects: list[tuple[ShapeObject, tuple[float, float, float, float]]], canvas: int) -> Image.Image:
    big = Image.new("RGB", (canvas * SUPERSAMPLE, canvas * SUPERSAMPLE), BACKGROUND)
    draw = ImageDraw.Draw(big)
    for obj, box in objects:
        _draw(draw, obj.shape, COLOURS[obj.colour], box)
    return big.resize((canvas, canvas), Image.Resampling.BOX)


def render_scene(scene: Scene, seed: int = 0, canvas: int = 64) -> Image.Image:
    """Render a scene; the seed decides the small jitter of positions and sizes."""
    rng = random.Random(seed)
    placed = []
    for obj in scene.objects:
        if obj.side is None:
            centre = (canvas / 2 + rng.uniform(-0.1, 0.1) * canvas, canvas / 2 + rng.uniform(-0.1, 0.1) * canvas)
        else:
            x = (0.25 if obj.side == "left" else 0.75) * canvas
            centre = (x + rng.uniform(-0.02, 0.02) * canvas, canvas / 2 + rng.uniform(-0.12, 0.12) * canvas)
        placed.append((obj, _box(obj, centre, canvas, rng)))
    return _canvas(placed, canvas)


def render_reference(obj: ShapeObject, seed: int = 0, canvas: int = 64) -> Image.Image:
    """An image prompt for `obj`: its shape and colour, at the other size and a random position."""
    rng = random.Random(seed)
    other = ShapeObject(obj.shape, obj.colour, "large" if obj.size == "small" else "small")
    margin = SIZE_FRACTION[other.size] * canvas * 0.6
    centre = (rng.uniform(margin, canvas - margin), rng.uniform(margin, canvas - margin))
    return _canvas([(other, _box(other, centre, canvas, rng))], canvas)
