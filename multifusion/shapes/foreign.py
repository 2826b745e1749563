"""An independent drawing routine for the `image_prompt` benchmark: single objects drawn the way another person's
tool would, not by the renderer and not by the training augmentations. Its own geometry (PIL's ellipse and
rectangle, an equilateral triangle, a star with inner radius 0.5, a heart built from two discs and a triangle),
its own colour shades, and canvases from 16 to 512 px with the object anywhere on a white, grey or tinted ground.
"""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

from .world import COLOURS, ShapeObject

SIDES = (16, 32, 64, 128, 256, 512)
GROUNDS = ((255, 255, 255), (228, 228, 228), (250, 240, 215), (225, 238, 250))  # white, grey, cream, pale blue


def _regular_star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    return [(cx + (r if i % 2 == 0 else r / 2) * math.cos(math.pi / 2 + math.pi * i / 5),
             cy - (r if i % 2 == 0 else r / 2) * math.sin(math.pi / 2 + math.pi * i / 5)) for i in range(10)]  # fmt: skip


def _heart(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, colour: tuple[int, int, int]) -> None:
    lobe = r * 0.52
    for dx in (-lobe, lobe):
        draw.ellipse((cx + dx - lobe, cy - r * 0.45 - lobe, cx + dx + lobe, cy - r * 0.45 + lobe), fill=colour)
    reach = 2 * lobe * math.cos(math.radians(45))  # tangent points of the lobes at 45 degrees
    draw.polygon([(cx - lobe - reach * 0.95, cy - r * 0.45 + reach * 0.35), (cx + lobe + reach * 0.95, cy - r * 0.45 + reach * 0.35),
                  (cx, cy + r)], fill=colour)  # fmt: skip


def draw_object(obj: ShapeObject, side: int, ground: tuple[int, int, int], rng: random.Random) -> Image.Image:
    """`obj`'s shape and colour on a `side`-px square canvas of colour `ground`, at a random place and size."""
    smooth = 3 if rng.random() < 0.5 else 1  # half drawn with hard edges
    size = side * smooth
    image = Image.new("RGB", (size, size), ground)
    draw = ImageDraw.Draw(image)
    colour = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in COLOURS[obj.colour])
    r = size * rng.uniform(0.15, 0.4)
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    if obj.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif obj.shape == "square":
        draw.rectangle((cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9), fill=colour)
    elif obj.shape == "triangle":
        draw.regular_polygon((cx, cy + r * 0.2, r), 3, fill=colour)
    elif obj.shape == "star":
        draw.polygon(_regular_star(cx, cy, r), fill=colour)
    else:
        _heart(draw, cx, cy, r, colour)
    return image.resize((side, side), Image.Resampling.LANCZOS) if smooth > 1 else image
