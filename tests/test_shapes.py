"""The shapes world: captions as a native speaker writes them, renders, dataset, and the scorer's accuracy."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from multifusion.shapes.captions import LANGUAGES, N_FRAMES, caption
from multifusion.shapes.dataset import ShapesDataset
from multifusion.shapes.render import _canvas, render_reference, render_scene
from multifusion.shapes.scorer import detect, validate
from multifusion.shapes.world import BACKGROUND, Scene, ShapeObject

RED_HEART = ShapeObject("heart", "red", "small")
RED_STAR = ShapeObject("star", "red", "large")
TWO = Scene((ShapeObject("circle", "purple", "large", "left"), ShapeObject("star", "orange", "small", "right")))


def one(obj):
    return Scene((obj,))


# (scene, language, frame, mention size) -> sentence
REFERENCE = [
    (one(RED_HEART), "en", 0, False, "a red heart"),
    (one(ShapeObject("circle", "orange", "small")), "en", 0, False, "an orange circle"),
    (one(ShapeObject("circle", "orange", "large")), "en", 3, True, "there is a large orange circle"),
    (TWO, "en", 1, False, "a purple circle on the left and an orange star on the right"),
    (one(RED_HEART), "de", 0, False, "ein rotes Herz"),
    (one(ShapeObject("circle", "red", "large")), "de", 0, True, "ein großer roter Kreis"),
    (one(ShapeObject("circle", "green", "small")), "de", 4, True, "das Bild zeigt einen kleinen grünen Kreis"),
    (one(ShapeObject("triangle", "black", "small")), "de", 1, True, "ein Bild von einem kleinen schwarzen Dreieck"),
    (one(ShapeObject("star", "purple", "large")), "de", 0, False, "ein lila Stern"),
    (TWO, "de", 1, False, "ein lila Kreis links und ein orange Stern rechts"),
    (TWO, "de", 2, True, "ein Bild von einem großen lila Kreis und einem kleinen orange Stern"),
    (one(RED_STAR), "fr", 0, False, "une étoile rouge"),
    (one(ShapeObject("circle", "red", "small")), "fr", 0, True, "un petit cercle rouge"),
    (one(RED_STAR), "fr", 1, True, "une image d'une grande étoile rouge"),
    (one(ShapeObject("star", "purple", "small")), "fr", 0, True, "une petite étoile violette"),
    (one(ShapeObject("heart", "green", "small")), "fr", 0, False, "un cœur vert"),
    (TWO, "fr", 1, False, "un cercle violet à gauche et une étoile orange à droite"),
    (one(RED_STAR), "it", 0, False, "una stella rossa"),
    (one(ShapeObject("circle", "blue", "small")), "it", 0, True, "un piccolo cerchio blu"),
    (one(ShapeObject("star", "yellow", "small")), "it", 0, True, "una piccola stella gialla"),
    (one(ShapeObject("heart", "black", "large")), "it", 3, True, "c'è un grande cuore nero"),
    (TWO, "it", 1, False, "un cerchio viola a sinistra e una stella arancione a destra"),
    (one(RED_STAR), "es", 0, False, "una estrella roja"),
    (one(RED_STAR), "es", 0, True, "una gran estrella roja"),
    (one(ShapeObject("heart", "purple", "small")), "es", 0, True, "un pequeño corazón morado"),
    (one(ShapeObject("triangle", "yellow", "large")), "es", 3, False, "hay un triángulo amarillo"),
    (TWO, "es", 1, False, "un círculo morado a la izquierda y una estrella naranja a la derecha"),
]


@pytest.mark.parametrize("scene, lang, frame, size, expected", REFERENCE)
def test_reference_sentences(scene, lang, frame, size, expected):
    assert caption(scene, lang, frame, size) == expected


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_frame_names_every_object(lang):
    sentences = {caption(TWO, lang, frame) for frame in range(N_FRAMES)} | {caption(one(RED_HEART), lang, f) for f in range(N_FRAMES)}
    assert len(sentences) == 2 * N_FRAMES  # frames are distinct
    for frame in range(N_FRAMES):
        text = caption(TWO, lang, frame)
        assert "{" not in text and caption(TWO, lang, frame, True) != text


def test_render_is_deterministic_anti_aliased_and_sided():
    image = render_scene(TWO, seed=3)
    assert image.size == (64, 64)
    assert np.array_equal(np.asarray(image), np.asarray(render_scene(TWO, seed=3)))
    assert not np.array_equal(np.asarray(image), np.asarray(render_scene(TWO, seed=4)))
    colours = {tuple(c) for c in np.asarray(image).reshape(-1, 3)}
    assert len(colours) > 10  # edge pixels blend object and background
    found = detect(image)
    assert [(d.shape, d.colour, d.size, d.side) for d in found] == [("circle", "purple", "large", "left"), ("star", "orange", "small", "right")]


def test_reference_image_shows_the_object_at_the_other_size():
    [found] = detect(render_reference(RED_HEART, seed=5))
    assert (found.shape, found.colour, found.size) == ("heart", "red", "large")


def test_dataset_is_deterministic_by_index():
    data = ShapesDataset(50, seed=7, languages=("de", "it"))
    a, b = data[13], ShapesDataset(50, seed=7, languages=("de", "it"))[13]
    assert a.caption == b.caption and a.scene == b.scene and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert {data[i].lang for i in range(50)} == {"de", "it"}
    assert all(len(data[i].object_images) == len(data[i].scene.objects) for i in range(10))
    with pytest.raises(IndexError):
        data[50]
    with pytest.raises(ValueError, match="languages"):
        ShapesDataset(5, languages=("en", "pt"))


def test_scorer_accuracy_on_a_fixed_held_out_set():
    report = validate(n_scenes=150, seed=424242)
    assert report["clean"]["all"] >= 0.98 and report["clean"]["count_right"] >= 0.98
    for kind in ("blur", "noise", "colour_shift", "resample"):
        assert report[kind]["all"] >= 0.95, (kind, report[kind])


def test_scorer_on_empty_and_crowded_images():
    from PIL import Image

    assert detect(Image.new("RGB", (64, 64), BACKGROUND)) == []
    objects = [ShapeObject("square", "blue", "small"), ShapeObject("circle", "black", "small"), ShapeObject("triangle", "green", "small")]
    image = _canvas([(o, (4 + 20 * i, 24, 18 + 20 * i, 38)) for i, o in enumerate(objects)], 64)
    assert [(d.shape, d.colour) for d in detect(image)] == [("square", "blue"), ("circle", "black"), ("triangle", "green")]


def test_eval_runs_end_to_end_on_a_saved_tiny_pipeline(tmp_path):
    from multifusion.testing import tiny_pipeline

    tiny_pipeline().save_pretrained(tmp_path / "model")
    out = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "multifusion.cli", "eval", "--model", str(tmp_path / "model"), "--quick", "--steps", "2",
         "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    benchmarks = report["benchmarks"]
    assert set(benchmarks) == {"single", "mcc", "weights", "languages"}
    assert set(benchmarks["single"]) == set(LANGUAGES) and benchmarks["single"]["de"]["n"] == 8
    assert set(benchmarks["mcc"]) == {"text", "multimodal", "mixed"}
    assert set(benchmarks["weights"]) == {"0", "1", "2.5"}
    assert benchmarks["languages"]["en"]["similarity_to_en"] == pytest.approx(1.0)
    assert report["config"]["steps"] == 2 and report["model"] == str(tmp_path / "model")
    assert "single (main object" in result.stdout
