"""The shapes world's vocabulary and scenes: one or two objects, each a shape, colour and size.

With two objects one stands on the left and one on the right; a single object stands near the centre and has no
side. Everything is drawn from a `random.Random`, so a seed fixes a scene.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "heart")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 150, 60),
    "blue": (40, 80, 215),
    "yellow": (240, 200, 25),
    "purple": (135, 55, 175),
    "orange": (245, 125, 25),
    "black": (25, 25, 25),
}
SIZES: tuple[str, ...] = ("small", "large")
SIDES: tuple[str, ...] = ("left", "right")
BACKGROUND: tuple[int, int, int] = (240, 238, 232)


@dataclass(frozen=True)
class ShapeObject:
    """One object. `side` is "left"/"right" in two-object scenes and None when alone."""

    shape: str
    colour: str
    size: str
    side: str | None = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES or self.colour not in COLOURS or self.size not in SIZES:
            raise ValueError(f"unknown object {self.shape!r}/{self.colour!r}/{self.size!r}")
        if self.side not in (None, *SIDES):
            raise ValueError(f"unknown side {self.side!r}")


@dataclass(frozen=True)
class Scene:
    """One or two objects; with two, `objects[0]` is on the left and `objects[1]` on the right."""

    objects: tuple[ShapeObject, ...]


def random_object(rng: random.Random, side: str | None = None) -> ShapeObject:
    return ShapeObject(rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(SIZES), side)


def random_scene(rng: random.Random, n_objects: int | None = None) -> Scene:
    """A scene of `n_objects` (1 or 2; random if None). Two objects always differ in shape or colour."""
    n_objects = n_objects or rng.choice((1, 2))
    if n_objects == 1:
        return Scene((random_object(rng),))
    if n_objects != 2:
        raise ValueError(f"a scene has one or two objects, not {n_objects}")
    left = random_object(rng, "left")
    while True:
        right = random_object(rng, "right")
        if (right.shape, right.colour) != (left.shape, left.colour):
            return Scene((left, right))


def near_miss(scene: Scene, rng: random.Random) -> Scene:
    """The scene with one detail wrong: one object's shape (most often: the detail image prompts confuse) or colour
    changed, or, with two objects, their sides swapped. A hard negative that a reading of the scene must rank below
    the scene itself."""
    i, roll = rng.randrange(len(scene.objects)), rng.random()
    if len(scene.objects) == 2 and roll < 0.2:
        return swapped_sides(scene)
    objects = list(scene.objects)
    if roll < 0.8:
        objects[i] = replace(objects[i], shape=rng.choice([s for s in SHAPES if s != objects[i].shape]))
    else:
        objects[i] = replace(objects[i], colour=rng.choice([c for c in COLOURS if c != objects[i].colour]))
    if len(objects) == 2 and (objects[0].shape, objects[0].colour) == (objects[1].shape, objects[1].colour):
        return near_miss(scene, rng)  # two identical objects are not a scene; try another detail
    return Scene(tuple(objects))


def misbound(scene: Scene, rng: random.Random) -> Scene:
    """The scene with its details bound to the wrong object: of two objects, their colours traded (when they
    differ, half the time) or their sides; one object gets another colour. The hard negative for a reading that
    must know which colour and which side belong to which shape ("a red square right of a yellow star" is not a
    yellow square right of a red star, nor an orange pair)."""
    if len(scene.objects) == 1:
        (obj,) = scene.objects
        return Scene((replace(obj, colour=rng.choice([c for c in COLOURS if c != obj.colour])),))
    left, right = scene.objects
    if left.colour != right.colour and left.shape != right.shape and rng.random() < 0.5:
        return Scene((replace(left, colour=right.colour), replace(right, colour=left.colour)))
    return swapped_sides(scene)


def swapped_sides(scene: Scene) -> Scene:
    """A two-object scene with its objects' sides traded."""
    left, right = scene.objects
    return Scene((replace(right, side="left"), replace(left, side="right")))
