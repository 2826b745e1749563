"""The shipped default model, weights/multifusion-tiny, on a small fixed sample (fixed seeds, so deterministic):
what a user would notice first, read by the shapes scorer.

Behaviours that the shipped weights do not reach yet are strict xfails, naming where the model card reports them:
they fail the suite the day they start to pass, so the marker comes off with the weights that earn it."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from multifusion import ImageSegment, MultiFusionPipeline, MultimodalPrompt, TextSegment
from multifusion.runtime import DEFAULT_MODEL, Runtime, RuntimeOptions
from multifusion.shapes.captions import caption
from multifusion.shapes.foreign import GROUNDS, draw_object
from multifusion.shapes.render import render_reference
from multifusion.shapes.scorer import detect, main_object
from multifusion.shapes.world import ShapeObject, random_scene
from ui import handlers
from ui.examples import EXAMPLES_DIR, load_examples

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


def shows(image, shape, colour):
    return any(d.shape == shape and d.colour == colour for d in detect(image))


def test_english_single_objects_are_mostly_right(pipe):
    """Eight one-object English captions (the `single` benchmark's first scenes), one image each."""
    rng = random.Random("single/0")
    scenes = [random_scene(rng, 1) for _ in range(8)]
    generators = [torch.Generator().manual_seed(i) for i in range(8)]
    prompts = [caption(s, "en") for s in scenes]
    found = [main_object(im) for im in pipe(prompts, num_inference_steps=20, guidance_scale=5.0, generator=generators).images]
    right = [d is not None and (d.shape, d.colour) == (s.objects[0].shape, s.objects[0].colour) for d, s in zip(found, scenes)]
    assert sum(right) >= 5, list(zip(prompts, [(d.shape, d.colour) if d else None for d in found]))


@pytest.mark.parametrize("lang", list(RED_CIRCLE))
def test_a_red_circle_in_every_language(pipe, lang):
    found = [main_object(im) for im in images(pipe, RED_CIRCLE[lang])]
    right = sum(d is not None and (d.shape, d.colour) == ("circle", "red") for d in found)
    assert right >= 3, [(d.shape, d.colour) if d else None for d in found]


@pytest.fixture(scope="module")
def from_an_image_prompt(pipe):
    """What the scorer finds in the images of a prompt that is one reference image (a small green heart)."""
    reference = render_reference(ShapeObject("heart", "green", "small"), seed=3)
    return [main_object(im) for im in images(pipe, MultimodalPrompt.of(ImageSegment(reference)))]


def test_an_image_prompt_gives_its_objects_colour(from_an_image_prompt):
    assert sum(d is not None and d.colour == "green" for d in from_an_image_prompt) >= 3


def test_an_image_prompt_gives_its_objects_shape(from_an_image_prompt):
    assert sum(d is not None and d.shape == "heart" for d in from_an_image_prompt) >= 3


@pytest.mark.parametrize("shape", ["star", "heart"])
def test_a_foreign_drawing_as_the_prompt_gives_its_shape(pipe, shape):
    """A reference drawn by another routine than the renderer (its own star and heart), large and off-centre on
    a 200-px tinted canvas: the shapes new users' drawings failed on most."""
    reference = draw_object(ShapeObject(shape, "purple", "large"), 200, GROUNDS[2], random.Random(shape))
    found = [main_object(im) for im in images(pipe, MultimodalPrompt.of(ImageSegment(reference)))]
    assert sum(d is not None and (d.shape, d.colour) == (shape, "purple") for d in found) >= 3, found


HELD_OUT_PHRASINGS = {  # held-out frames (never trained on), colour as a noun or named
    "en": "could you please paint a triangle in green?", "de": "zeichne bitte nur ein Dreieck in Grün",
    "fr": "je veux un dessin montrant un triangle de couleur vert", "it": "mostra un triangolo in verde su sfondo chiaro",
    "es": "¿Puedes pintar un triángulo de color verde, por favor?",
}  # fmt: skip


@pytest.mark.parametrize("lang", list(HELD_OUT_PHRASINGS))
def test_a_held_out_phrasing_is_understood(pipe, lang):
    found = [main_object(im) for im in images(pipe, HELD_OUT_PHRASINGS[lang])]
    assert sum(d is not None and (d.shape, d.colour) == ("triangle", "green") for d in found) >= 3, found


def test_the_tokenizer_reads_capitals_as_the_words_it_knows(pipe):
    ids = lambda text: pipe.tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    assert ids("BLUE STAR, PLEASE") == ids("blue star, please")
    assert ids("blauer stern") == ids("blauer Stern")


def test_the_encoder_reads_every_training_arrangement_on_its_named_sides(pipe):
    """`recipe.sides`, the quick screen of the relational frame: each two-object arrangement the encoder was trained
    on ("{a} to the left of {b}", "{b} on the right, next to {a}", ...) reads, in every language, nearest its scene,
    against the mirrored scene (the same words, the sides swapped) and either object twice, and close to it."""
    from multifusion.shapes.recipe.config import load_config
    from multifusion.shapes.recipe.sides import EVERY_FRAME, FRAMES, read_sides

    assert FRAMES["left of (training)"]["en"] == "{a} to the left of {b}"
    assert FRAMES["left of (training)"]["de"] == "{a} links von {b:dat}"
    assert EVERY_FRAME["{a} to the left of {b} (training)"] == FRAMES["left of (training)"]
    assert EVERY_FRAME["{b} to the right of {a} (held out)"] == FRAMES["right of (held out)"]
    shares, distances = read_sides(pipe, load_config("tiny"), n=16, frames=EVERY_FRAME)
    assert "on the right {b}, on the left {a} (training)" not in EVERY_FRAME  # bare, it is a held-out frame
    trained = [name for name in EVERY_FRAME if name.endswith("(training)")]
    assert len(trained) > 10 and set(shares) == set(distances) == set(EVERY_FRAME)
    assert all(shares[name][lang]["scene"] >= 0.9 for name in trained for lang in shares[name]), shares
    # and near it: two random scenes read a median 1.0 apart in this unit (on v25), each frame within a fifth of it
    assert all(0 < distances[name][lang]["scene"] < 0.2 for name in trained for lang in distances[name]), distances


TAGS = {  # what a visitor from AUTOMATIC1111 or ComfyUI types first (issue 34's reports), and what it must draw
    "blue star": ("star", "blue"), "Blue star": ("star", "blue"), "green triangle": ("triangle", "green"),
    "blauer Stern": ("star", "blue"), "STAR, BLUE": ("star", "blue"), "cuore rosso": ("heart", "red"),
}  # fmt: skip


@pytest.mark.parametrize("tag", list(TAGS))
def test_a_tag_draws_its_colour_and_shape(pipe, tag):
    found = [main_object(im) for im in images(pipe, tag)]
    assert sum(d is not None and (d.shape, d.colour) == TAGS[tag] for d in found) >= 3, found


@pytest.mark.parametrize("tags", ["red circle, blue star", "cercle rouge + étoile bleue"])
def test_a_comma_list_of_two_tags_draws_both(pipe, tags):
    both = sum(shows(im, "circle", "red") and shows(im, "star", "blue") for im in images(pipe, tags))
    assert both >= 3, both


def test_weight_zero_removes_an_object(pipe):
    def prompt(weight):
        return MultimodalPrompt((TextSegment("a yellow star"), TextSegment(" and "), TextSegment("a blue square", weight)))

    with_square = sum(shows(im, "square", "blue") for im in images(pipe, prompt(1.0)))
    without = sum(shows(im, "square", "blue") for im in images(pipe, prompt(0.0)))
    assert without <= 1 and with_square > without


@pytest.mark.parametrize("example", load_examples(), ids=lambda example: example["label"])
def test_every_bundled_example_shows_what_it_says(pipe, tmp_path, example):
    """The app's examples, with the app's default settings and the example's seed: the first image shows the
    objects the example names, and not the one it weights to 0."""
    studio = handlers.Studio(Runtime(pipe, RuntimeOptions(device="cpu")), "multifusion-tiny", work_dir=tmp_path)
    studio.trusted_dirs = (EXAMPLES_DIR,)
    prompt = handlers.composition_to_prompt(studio, example["composition"])
    image = handlers.generate(studio, prompt, handlers.settings_from({"seed": example["seed"]})).images[0]
    found = {(d.shape, d.colour) for d in detect(image)}
    assert all(tuple(wanted) in found for wanted in example["expect"]["shows"]), found
    assert not any(tuple(unwanted) in found for unwanted in example["expect"].get("hides", [])), found


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_draws_what_full_precision_draws(dtype):
    """bf16 and fp16 through the whole pipeline (encoder, attention bias, U-Net, VAE) on the CPU, at weights 0, 1
    and 5: finite images that the scorer reads as it reads the fp32 ones."""
    prompts = [MultimodalPrompt.of("a red circle"), MultimodalPrompt.of(TextSegment("a yellow star", 5.0)),
               MultimodalPrompt.of(TextSegment("a red circle", 0.0), " and a blue square")]  # fmt: skip
    expected = [("circle", "red"), ("star", "yellow"), ("square", "blue")]
    readings = {}
    for precision in (torch.float32, dtype):
        half = MultiFusionPipeline.from_pretrained(DEFAULT_MODEL, dtype=precision)
        half.set_progress_bar_config(disable=True)
        generators = [torch.Generator().manual_seed(s) for s in range(len(prompts))]
        pixels = half(prompts, num_inference_steps=12, guidance_scale=5.0, generator=generators, output_type="np").images
        assert np.isfinite(pixels).all()
        found = [main_object(Image.fromarray((p * 255).round().astype("uint8"))) for p in pixels]
        readings[precision] = [(d.shape, d.colour) if d else None for d in found]
    assert readings[torch.float32] == expected
    assert readings[dtype] == readings[torch.float32]


def test_a_batched_image_is_its_single_image_up_to_rounding():
    """With `batch_images`, image i of a batch has the noise of seed + i alone; batched kernels round differently, so pixels may differ
    by a few levels of 255 (the README's contract), never in what the picture shows."""
    runtime = Runtime.load(DEFAULT_MODEL, RuntimeOptions(device="cpu", batch_images=True))
    from multifusion.runtime import GenerationSettings

    batch = runtime.generate("a green heart and a blue square", GenerationSettings(seed=20, num_images=4))
    for i, image in enumerate(batch):
        (alone,) = runtime.generate("a green heart and a blue square", GenerationSettings(seed=20 + i))
        assert np.abs(np.asarray(image, dtype=int) - np.asarray(alone, dtype=int)).max() <= 3
        assert {(d.shape, d.colour) for d in detect(image)} == {(d.shape, d.colour) for d in detect(alone)}
