"""Reference images as people supply them, for training the image path: the renderer's shapes in varied geometry
(star points, heart clefts, triangle apexes) at any canvas size (16 to 512 px) and aspect, anywhere on it, on
tinted backgrounds, with hard or anti-aliased edges, outlined or not, slightly rotated and stretched, with JPEG
artefacts and noise. A model trained on these reads an image prompt by its shape and colour, not by how the
renderer happens to draw it."""

from __future__ import annotations

import io
import math
import random

import numpy as np
from PIL import Image, ImageDraw

from .render import outline
from .world import BACKGROUND, COLOURS, ShapeObject

CANVAS_SIDES = (16, 512)


def _jitter(colour: tuple[int, ...], rng: random.Random, amount: int) -> tuple[int, ...]:
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in colour)


def _background(rng: random.Random) -> tuple[int, int, int]:
    draw = rng.random()
    if draw < 0.3:
        return BACKGROUND
    if draw < 0.5:
        return (255, 255, 255)
    return tuple(rng.randint(200, 255) for _ in range(3))  # a light tint of any hue


def _varied_outline(shape: str, rng: random.Random) -> tuple[tuple[float, float], ...]:
    """The shape as someone else might draw it: fat or thin star points, a shallow or deep heart cleft, an apex
    off the middle (rounded values, so that the outline cache stays small)."""
    variation = {"star": {"star_inner": round(rng.uniform(0.3, 0.62), 2)}, "heart": {"heart_cleft": round(rng.uniform(2.5, 7.5), 1)},
                 "triangle": {"apex": round(rng.uniform(0.35, 0.65), 2)}}  # fmt: skip
    return outline(shape, **variation.get(shape, {}))


def _polygon(shape: str, box: tuple[float, float, float, float], angle: float, rng: random.Random) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    points = []
    for u, v in _varied_outline(shape, rng):
        x, y = x0 + u * (x1 - x0) - cx, y0 + v * (y1 - y0) - cy
        points.append((cx + x * cos - y * sin, cy + x * sin + y * cos))
    return points


def varied_reference(obj: ShapeObject, rng: random.Random) -> Image.Image:
    """One reference image of `obj` (its shape and colour; its size is the drawing's), varied as described above."""
    side = round(math.exp(rng.uniform(math.log(CANVAS_SIDES[0]), math.log(CANVAS_SIDES[1]))))
    width, height = side, max(CANVAS_SIDES[0], round(side * rng.uniform(0.6, 1.6)))
    scale = 1 if rng.random() < 0.3 else max(1, min(4, 512 // side))  # hard edges, or supersampled (anti-aliased)
    extent = max(min(width, height) * rng.uniform(0.2, 0.85), min(width, height, 10))  # 10 px at least
    w, h = extent * rng.uniform(0.85, 1.15), extent * rng.uniform(0.85, 1.15)
    cx, cy = rng.uniform(w / 2, width - w / 2), rng.uniform(h / 2, height - h / 2)
    box = tuple(v * scale for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    big = Image.new("RGB", (width * scale, height * scale), _background(rng))
    draw = ImageDraw.Draw(big)
    fill = _jitter(COLOURS[obj.colour], rng, 12)
    points = _polygon(obj.shape, box, math.radians(rng.uniform(-12, 12)), rng)
    if rng.random() < 0.25:  # an outline, darker than the fill or black
        edge = (20, 20, 20) if rng.random() < 0.5 else tuple(int(c * 0.6) for c in fill)
        draw.polygon(points, fill=fill, outline=edge, width=max(1, round(extent * scale * rng.uniform(0.02, 0.06))))
    else:
        draw.polygon(points, fill=fill)
    image = big.resize((width, height), Image.Resampling.BOX) if scale > 1 else big
    if rng.random() < 0.3:
        pixels = np.asarray(image, dtype=np.float32) + np.random.default_rng(rng.randrange(2**31)).normal(0, rng.uniform(2, 8), (height, width, 3))
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=rng.randint(30, 90))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image
