"""The shipped default model, weights/multifusion-tiny, on a small fixed sample (fixed seeds, so deterministic):
what a user would notice first, read by the shapes scorer."""

import pytest
import torch

from multifusion import ImageSegment, MultiFusionPipeline, MultimodalPrompt, TextSegment
from multifusion.runtime import DEFAULT_MODEL
from multifusion.shapes.render import render_reference
from multifusion.shapes.scorer import detect
from multifusion.shapes.world import ShapeObject

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.is_dir(), reason="weights/multifusion-tiny is not in this checkout")
SEEDS = range(4)
RED_CIRCLE = {"en": "a red circle", "de": "ein roter Kreis", "fr": "un cercle rouge", "it": "un cerchio rosso",
              "es": "un círculo rojo"}  # fmt: skip


@pytest.fixture(scope="module")
def pipe():
    pipe = MultiFusionPipeline.from_pretrained(DEFAULT_MODEL)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def images(pipe, prompt, **kwargs):
    generators = [torch.Generator().manual_seed(s) for s in SEEDS]
    return pipe([prompt] * len(SEEDS), num_inference_steps=20, guidance_scale=5.0, generator=generators, **kwargs).images


def main_object(image):
    found = detect(image)
    return max(found, key=lambda d: d.area) if found else None


def shows(image, shape, colour):
    return any(d.shape == shape and d.colour == colour for d in detect(image))


@pytest.mark.parametrize("lang", list(RED_CIRCLE))
def test_a_red_circle_in_every_language(pipe, lang):
    found = [main_object(im) for im in images(pipe, RED_CIRCLE[lang])]
    right = sum(d is not None and (d.shape, d.colour) == ("circle", "red") for d in found)
    assert right >= 3, [(d.shape, d.colour) if d else None for d in found]


def test_an_image_prompt_gives_its_object(pipe):
    reference = render_reference(ShapeObject("heart", "green", "small"), seed=3)
    found = [main_object(im) for im in images(pipe, MultimodalPrompt.of(ImageSegment(reference)))]
    assert sum(d is not None and (d.shape, d.colour) == ("heart", "green") for d in found) >= 3


def test_weight_zero_removes_an_object(pipe):
    def prompt(weight):
        return MultimodalPrompt((TextSegment("a yellow star"), TextSegment(" and "), TextSegment("a blue square", weight)))

    with_square = sum(shows(im, "square", "blue") for im in images(pipe, prompt(1.0)))
    without = sum(shows(im, "square", "blue") for im in images(pipe, prompt(0.0)))
    assert without <= 1 and with_square > without
