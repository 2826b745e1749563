"""Shapes-world datasets: deterministic samples of (image, caption, language, object images, ground truth).

Sample i of a dataset depends only on (seed, i), so any index can be drawn in any order, by any worker.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from .captions import LANGUAGES, random_caption
from .render import render_reference, render_scene
from .world import Scene, random_scene


@dataclass(frozen=True)
class ShapesSample:
    image: Image.Image
    caption: str
    lang: str
    object_images: tuple[Image.Image, ...]  # one reference render per object, left to right
    scene: Scene  # the ground truth


class ShapesDataset:
    """A map-style dataset (works with `torch.utils.data.DataLoader`) of shapes-world samples.

    Args:
        length: number of samples.
        seed: fixes every sample; use different seeds for training and held-out sets.
        languages: captions are drawn from these languages.
        n_objects: 1, 2, or None for a mix.
        canvas: image side in pixels.
    """

    def __init__(
        self,
        length: int,
        seed: int = 0,
        languages: Sequence[str] = LANGUAGES,
        n_objects: int | None = None,
        canvas: int = 64,
    ) -> None:
        unknown = set(languages) - set(LANGUAGES)
        if unknown or not languages:
            raise ValueError(f"languages must be a non-empty subset of {LANGUAGES}, got {list(languages)}")
        self.length, self.seed, self.languages = length, seed, tuple(languages)
        self.n_objects, self.canvas = n_objects, canvas

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> ShapesSample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = random.Random(f"{self.seed}/{index}")
        scene = random_scene(rng, self.n_objects)
        lang = rng.choice(self.languages)
        image = render_scene(scene, seed=rng.randrange(2**31), canvas=self.canvas)
        references = tuple(render_reference(obj, seed=rng.randrange(2**31), canvas=self.canvas) for obj in scene.objects)
        return ShapesSample(image, random_caption(scene, lang, rng), lang, references, scene)
