"""Find the objects in a shapes-world image and read their shape, colour, size and side.

1. Foreground: pixels far from the background colour (estimated from the image border).
2. Objects: 8-connected components of the foreground; components below `min_area` are specks and ignored.
3. Shape: the component's mask, cropped to its bounding box and resized to a fixed grid, is compared with the
   renderer's own outlines; the best intersection-over-union wins.
4. Colour: the median of the component's inner pixels, nearest palette colour.
5. Size: bounding-box side against the midpoint of the small and large render sizes. Side: centroid x.

An image with no object gives an empty list; three or more objects give all of them, left to right. Run
`python -m multifusion.shapes.scorer` to measure accuracy on held-out renders, clean and degraded.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .render import SIZE_FRACTION, outline, render_scene
from .world import COLOURS, SHAPES, random_scene

GRID = 24
_PALETTE_NAMES = list(COLOURS)
_PALETTE = np.array([COLOURS[c] for c in _PALETTE_NAMES], dtype=np.float32)


@dataclass(frozen=True)
class Detection:
    """One object found in an image. `confidence` is the shape template's IoU (0..1)."""

    shape: str
    colour: str
    size: str
    side: str
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    area: int
    confidence: float


@lru_cache(maxsize=None)
def _templates(side: int) -> dict[str, list[np.ndarray]]:
    """Each outline rendered at `side` pixels, sharp and blurred, binarised at half contrast, on the grid."""
    out: dict[str, list[np.ndarray]] = {}
    pad = 4
    for shape in SHAPES:
        big = Image.new("L", ((side + 2 * pad) * 4,) * 2, 0)
        corner, extent = pad * 4, side * 4 - 1
        ImageDraw.Draw(big).polygon([(corner + u * extent, corner + v * extent) for u, v in outline(shape)], fill=255)
        sharp = big.resize((side + 2 * pad,) * 2, Image.Resampling.BOX)
        out[shape] = []
        for radius in (0.0, 0.8, 1.4):
            image = sharp.filter(ImageFilter.GaussianBlur(radius)) if radius else sharp
            mask = np.asarray(image, dtype=np.float32)
            mask = mask >= 0.5 * mask.max()
            ys, xs = np.nonzero(mask)
            out[shape].append(_to_grid(mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]))
    return out


@lru_cache(maxsize=None)
def _fill_ratio(shape: str) -> float:
    """The fraction of its bounding box a shape covers."""
    return float(np.mean(_templates(48)[shape][0]))


def _to_grid(mask: np.ndarray) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.resize((GRID, GRID), Image.Resampling.BILINEAR)) > 127


def _components(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    """8-connected components of a boolean mask, as arrays of (y, x) pixel coordinates."""
    seen = np.zeros_like(mask, dtype=bool)
    height, width = mask.shape
    found = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        queue, pixels = deque([(y0, x0)]), []
        while queue:
            y, x = queue.popleft()
            pixels.append((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
        if len(pixels) >= min_area:
            found.append(np.array(pixels))
    return found


def _classify_shape(pixels: np.ndarray, bbox: tuple[int, int, int, int]) -> tuple[str, float]:
    x0, y0, x1, y1 = bbox
    crop = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    crop[pixels[:, 0] - y0, pixels[:, 1] - x0] = True
    grid = _to_grid(crop)
    iou = lambda t: float((grid & t).sum() / max((grid | t).sum(), 1))  # noqa: E731
    scores = {s: max(iou(t) for t in ts) for s, ts in _templates(max(x1 - x0, y1 - y0, 4)).items()}
    best = max(scores, key=scores.get)
    return best, scores[best]


def detect(image: Image.Image, threshold: float = 35.0, min_area: int | None = None) -> list[Detection]:
    """All objects in `image`, left to right."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    height, width, _ = rgb.shape
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    distance = np.sqrt(((rgb - np.median(border, axis=0)) ** 2).sum(axis=-1))
    min_area = min_area if min_area is not None else max(6, (height * width) // 400)
    size_split = (SIZE_FRACTION["small"] + SIZE_FRACTION["large"]) / 2 * max(height, width)

    detections = []
    for coarse in _components(distance > threshold, min_area):
        # Half of the object's own contrast marks its true edge even when blurred, and splits blurred neighbours.
        refined = np.zeros_like(distance, dtype=bool)
        contrast = np.percentile(distance[coarse[:, 0], coarse[:, 1]], 95)
        keep = distance[coarse[:, 0], coarse[:, 1]] >= 0.5 * contrast
        refined[coarse[keep, 0], coarse[keep, 1]] = True
        for pixels in _components(refined, min_area):
            detections.append(_read_object(pixels, rgb, refined, size_split))
    return sorted(detections, key=lambda d: d.bbox[0])


def main_object(image: Image.Image) -> Detection | None:
    """The largest object in `image` (what a one-object prompt is judged by), or None when there is none."""
    return largest(detect(image))


def largest(found: list[Detection]) -> Detection | None:
    """The largest of `detect`'s objects, or None when there is none."""
    return max(found, key=lambda d: d.area) if found else None


def shows(found: list[Detection], obj, sided: bool = False) -> bool:
    """Whether `detect`'s objects include `obj`'s shape in its colour (`sided`: also on its side)."""
    return any(d.shape == obj.shape and d.colour == obj.colour and (not sided or d.side == obj.side) for d in found)


def _read_object(pixels: np.ndarray, rgb: np.ndarray, mask: np.ndarray, size_split: float) -> Detection:
    height, width = mask.shape
    ys, xs = pixels[:, 0], pixels[:, 1]
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    shape, confidence = _classify_shape(pixels, bbox)
    # inner pixels (all 4 neighbours in the object) carry the colour without anti-aliased edges
    inner = mask[np.clip(ys - 1, 0, None), xs] & mask[np.clip(ys + 1, None, height - 1), xs]
    inner &= mask[ys, np.clip(xs - 1, 0, None)] & mask[ys, np.clip(xs + 1, None, width - 1)]
    chosen = pixels[inner] if inner.sum() >= 4 else pixels
    colour = np.median(rgb[chosen[:, 0], chosen[:, 1]], axis=0)
    colour_name = _PALETTE_NAMES[int(np.argmin(((_PALETTE - colour) ** 2).sum(axis=1)))]
    side_px = math.sqrt(len(pixels) / _fill_ratio(shape))  # from the area: robust to blurred-away tips
    size = "large" if side_px > size_split else "small"
    return Detection(shape, colour_name, size, "left" if xs.mean() < width / 2 else "right", bbox, len(pixels), confidence)


# --- validation --------------------------------------------------------------------------------------------------
DEGRADATIONS = ("clean", "blur", "noise", "colour_shift", "resample")


def degrade(image: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """Blur, Gaussian noise, a global colour shift, or down-and-up resampling, as a generator's output might show."""
    if kind == "clean":
        return image
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=1.0))
    array = np.asarray(image, dtype=np.float32)
    if kind == "noise":
        array = array + np.random.default_rng(rng.randrange(2**32)).normal(0, 8, array.shape)
    elif kind == "colour_shift":
        array = array + np.array([rng.uniform(-15, 15) for _ in range(3)], dtype=np.float32)
    elif kind == "resample":
        small = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.BILINEAR)
        return small.resize(image.size, Image.Resampling.BICUBIC)
    else:
        raise ValueError(f"unknown degradation {kind!r}")
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def validate(n_scenes: int = 2000, seed: int = 1_000_003) -> dict[str, dict[str, float]]:
    """Per-object accuracy (shape, colour, size, side and all four) on held-out renders, per degradation."""
    rng = random.Random(seed)
    scenes = [(random_scene(rng), rng.randrange(2**31)) for _ in range(n_scenes)]
    report = {}
    for kind in DEGRADATIONS:
        counts = dict.fromkeys(("objects", "shape", "colour", "size", "side", "all", "count_right"), 0)
        for scene, scene_seed in scenes:
            image = degrade(render_scene(scene, seed=scene_seed), kind, random.Random(scene_seed))
            found = detect(image)
            counts["count_right"] += len(found) == len(scene.objects)
            for obj in scene.objects:
                counts["objects"] += 1
                # match by position: the detection on the object's side (or the only one)
                side = obj.side or ("left" if len(found) and found[0].side == "left" else "right")
                candidates = [d for d in found if d.side == side] if obj.side else found[:1]
                if not candidates:
                    continue
                d = candidates[0]
                ok = {"shape": d.shape == obj.shape, "colour": d.colour == obj.colour, "size": d.size == obj.size,
                      "side": obj.side is None or d.side == obj.side}  # fmt: skip
                for key, value in ok.items():
                    counts[key] += value
                counts["all"] += all(ok.values())
        objects = counts.pop("objects")
        report[kind] = {k: v / (n_scenes if k == "count_right" else objects) for k, v in counts.items()}
        report[kind]["objects"] = objects
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure the shapes scorer on held-out renders.")
    parser.add_argument("--scenes", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = validate(args.scenes)
    print(f"{'images':<14}{'objects':>8}{'shape':>8}{'colour':>8}{'size':>8}{'side':>8}{'all four':>10}{'count':>8}")
    for kind, r in report.items():
        print(f"{kind:<14}{r['objects']:>8}" + "".join(f"{100 * r[k]:>8.1f}" for k in ("shape", "colour", "size", "side"))
              + f"{100 * r['all']:>10.1f}{100 * r['count_right']:>8.1f}")  # fmt: skip
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
