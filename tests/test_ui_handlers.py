"""The app's handlers, without a browser: compositions, settings, generation records, restore, compare, sweep."""

import threading

import numpy as np
import pytest
from PIL import Image

from multifusion import PromptError
from multifusion.metadata import parameters_text, read_record
from multifusion.runtime import Runtime, RuntimeOptions
from ui import handlers
from ui.handlers import Cancelled, Studio


@pytest.fixture
def studio(pipe, tmp_path):
    return Studio(Runtime(pipe, RuntimeOptions(device="cpu")), "tiny-test", work_dir=tmp_path / "studio")


def quick(**overrides):
    return handlers.settings_from({"steps": 2, "guidance": 3.0, "seed": 3, **overrides})


def test_composition_becomes_a_validated_prompt(studio, red_image):
    path = studio.store_image(red_image)
    value = {"segments": [
        {"type": "text", "text": "a photo of", "weight": 1.0, "lang": "en"},
        {"type": "image", "path": str(path), "weight": 0.5, "name": "ref", "url": "/ignored"},
        {"type": "text", "text": " bei Nacht", "weight": 2, "lang": "auto"},
    ]}  # fmt: skip
    prompt = handlers.composition_to_prompt(studio, value)
    assert prompt.weights == (1.0, 0.5, 2.0)
    assert prompt.segments[0].lang == "en" and prompt.segments[2].lang is None
    assert prompt.segments[1].digest == handlers.ImageSegment(red_image).digest


@pytest.mark.parametrize(
    "segment, message",
    [
        ({"type": "image", "path": "/etc/hostname"}, "only uploaded images"),
        ({"type": "image", "path": "../../../etc/passwd"}, "only uploaded images"),
        ({"type": "image", "path": ""}, "no image given"),
        ({"type": "image", "path": "data:image/png;base64,AAAA"}, "not a readable image"),
        ({"type": "text", "text": "a", "weight": "heavy"}, "must be a number"),
        ({"type": "text", "text": "a", "weight": "0.5"}, "must be a number"),  # exact types, as in the API
        ({"type": "text", "text": "a", "weight": float("nan")}, "must be a finite number"),
        ({"type": "text", "text": "a", "colour": "red"}, r"segment 1 \(text\): unknown field"),
        ({"type": "text", "text": "a", "weight": 7}, "outside"),
        ({"type": "text", "text": "a", "lang": "pt"}, "unknown language"),
        ({"type": "text", "text": ""}, "is empty"),
        ({"type": "video"}, '"type" must be "text" or "image"'),
    ],
)
def test_bad_compositions_are_refused(studio, segment, message):
    with pytest.raises(PromptError, match=message):
        handlers.composition_to_prompt(studio, {"segments": [segment]})


def test_settings_from_json(studio):
    settings = handlers.settings_from({"steps": 25.0, "seed": 7.0, "negative": "(blurry:1.5)", "num_images": 2})
    assert settings.steps == 25 and settings.seed == 7 and settings.negative.weights == (1.5,)
    with pytest.raises(PromptError, match="unknown setting.*stpes"):
        handlers.settings_from({"stpes": 10})
    with pytest.raises(PromptError, match="steps"):
        handlers.settings_from({"steps": 0})


def test_generate_writes_pngs_that_restore_the_composition_exactly(studio, red_image):
    value = {"segments": [{"type": "image", "path": str(studio.store_image(red_image)), "weight": 0.8, "name": "ref"},
                          {"type": "text", "text": " und ein blauer Stern", "weight": 1.5, "lang": "de"}]}  # fmt: skip
    prompt = handlers.composition_to_prompt(studio, value)
    result = handlers.generate(studio, prompt, quick(num_images=2, negative="blurry"))
    assert len(result.paths) == 2 and all(p.exists() for p in result.paths)
    assert read_record(Image.open(result.paths[1]))["image_seed"] == 4

    restored, settings, missing = handlers.restore(studio, Image.open(result.paths[1]))
    assert missing == []
    assert handlers.composition_to_prompt(studio, restored) == prompt
    again = handlers.generate(studio, handlers.composition_to_prompt(studio, restored), handlers.settings_from(settings))
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(result.images[1]))
    assert handlers.negative_as_text(settings["negative"]) == "blurry"  # what the Negative prompt box gets back


def test_pngs_carry_automatic1111_parameters_that_png_info_shows(studio):
    prompt = handlers.composition_to_prompt(studio, {"segments": [{"type": "text", "text": "a red circle"},
                                                                  {"type": "text", "text": " and a blue star", "weight": 1.5}]})  # fmt: skip
    result = handlers.generate(studio, prompt, quick(num_images=2, negative="blurry"))
    png = Image.open(result.paths[1])
    lines = png.text["parameters"].splitlines()
    assert lines[0] == "a red circle(and a blue star:1.5)" or lines[0] == "a red circle( and a blue star:1.5)"
    assert lines[1] == "Negative prompt: blurry"
    fields = dict(item.split(": ", 1) for item in lines[2].split(", "))
    assert fields["Steps"] == "2" and fields["CFG scale"] == "3.0" and fields["Seed"] == "4"
    assert fields["Size"] == f"{png.width}x{png.height}" and fields["Model"] == "tiny-test"
    assert fields["Sampler"] and fields["Weights in"] == "both" and "Guided steps" not in fields  # guided throughout
    text, record = handlers.png_info(png)  # read without restoring
    assert text == png.text["parameters"] and record == result.records[1]
    assert record["guidance_end"] == 1.0 and "Guided steps: first 60%" in parameters_text({**record, "guidance_end": 0.6}, png.size)


def test_png_info_reads_other_tools_parameters_and_refuses_bare_pngs(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, Seed: 1")
    Image.new("RGB", (8, 8)).save(tmp_path / "a1111.png", pnginfo=info)
    assert handlers.png_info(Image.open(tmp_path / "a1111.png")) == ("a cat\nSteps: 20, Sampler: Euler a, Seed: 1", None)
    Image.new("RGB", (8, 8)).save(tmp_path / "bare.png")
    with pytest.raises(PromptError, match="no generation parameters"):
        handlers.png_info(Image.open(tmp_path / "bare.png"))


def test_compare_and_sweep_pngs_restore_to_the_same_picture(studio):
    compared, _ = handlers.compare_languages(studio, {"en": "a red circle", "de": "ein blauer Stern"}, quick())
    prompt = handlers.composition_to_prompt(studio, {"segments": [{"type": "text", "text": "a red circle"},
                                                                  {"type": "text", "text": " and a blue star"}]})  # fmt: skip
    swept = handlers.weight_sweep(studio, prompt, 2, 0.0, 2.0, 3, quick())
    for result, index in ((compared, 1), (swept, 2)):
        png = Image.open(result.paths[index])
        assert read_record(png) == result.records[index] and "parameters" in png.text
        restored, settings, missing = handlers.restore(studio, png)
        again = handlers.generate(studio, handlers.composition_to_prompt(studio, restored), handlers.settings_from(settings))
        assert np.array_equal(np.asarray(again.images[0]), np.asarray(result.images[index]))


def test_a_recorded_negative_prompt_becomes_the_text_the_box_holds():
    assert handlers.negative_as_text(None) == ""
    weighted = {"segments": [{"type": "text", "text": "blurry, "}, {"type": "text", "text": "dark", "weight": 1.5}]}
    assert handlers.negative_as_text(weighted) == "blurry, (dark:1.5)"
    assert handlers.parse_prompt(handlers.negative_as_text(weighted)).weights == (1.0, 1.5)
    assert handlers.negative_as_text({"segments": [{"type": "image", "image": "sha256:ab"}]}) is None


def test_restore_refuses_foreign_pngs(studio, tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(PromptError, match="no MultiFusion metadata"):
        handlers.restore(studio, Image.open(path))


def test_compare_languages_uses_one_seed_and_reports_similarity(studio):
    result, similarity = handlers.compare_languages(studio, {"en": "a red circle", "de": "ein roter Kreis", "fr": ""}, quick())
    assert [label.split()[0] for label in result.captions] == ["en", "de"]
    assert all(label.endswith("seed 3") for label in result.captions)
    assert similarity["en"] == pytest.approx(1.0) and -1 <= similarity["de"] < 0.9999
    with pytest.raises(PromptError, match="at least one language"):
        handlers.compare_languages(studio, {"en": "  "}, quick())


def test_weight_sweep_changes_the_picture_along_the_strip(studio):
    prompt = handlers.composition_to_prompt(studio, {"segments": [{"type": "text", "text": "a red circle"},
                                                                  {"type": "text", "text": " and a blue star"}]})  # fmt: skip
    strip = handlers.weight_sweep(studio, prompt, 2, 0.0, 2.0, 3, quick())
    assert strip.captions == ["weight 0.00 · seed 3", "weight 1.00 · seed 3", "weight 2.00 · seed 3"]
    arrays = [np.asarray(image, dtype=float) for image in strip.images]
    assert np.abs(arrays[0] - arrays[1]).max() > 0 and np.abs(arrays[2] - arrays[1]).max() > 0
    with pytest.raises(PromptError, match="pick a segment"):
        handlers.weight_sweep(studio, prompt, 5, 0.0, 2.0, 3, quick())


def test_cancel_stops_between_steps(studio):
    prompt = handlers.composition_to_prompt(studio, {"segments": [{"type": "text", "text": "a circle"}]})
    cancel, steps = threading.Event(), []

    def on_step(i, n):
        steps.append(i)
        cancel.set()

    with pytest.raises(Cancelled):
        handlers.generate(studio, prompt, quick(steps=10), on_step=on_step, cancel=cancel)
    assert steps == [1]


def test_api_answer_carries_data_urls(studio):
    prompt = handlers.composition_to_prompt(studio, {"segments": [{"type": "text", "text": "a circle"}]})
    answer = handlers.data_urls(handlers.generate(studio, prompt, quick()))
    assert answer["images"][0].startswith("data:image/png;base64,") and answer["metadata"][0]["settings"]["steps"] == 2
    assert handlers.composition_to_prompt(studio, {"segments": [{"type": "image", "image": answer["images"][0]}]})


@pytest.mark.parametrize("text", [t for t, _ in __import__("test_prompt").A1111])
def test_a_text_card_reads_the_emphasis_grammar_as_the_string_syntax_does(studio, text):
    from multifusion import parse_prompt

    card = handlers.composition_to_prompt(studio, {"segments": [{"type": "text", "text": text, "weight": 1.0}]})
    assert card == parse_prompt(text)


def test_a_cards_slider_multiplies_what_its_text_says_and_restore_keeps_literal_brackets(studio):
    value = {"segments": [{"type": "text", "text": "a (heart:1.4) in [green]", "weight": 2.0, "lang": "en"},
                          {"type": "text", "text": r" \(literal\)", "weight": 1.0}]}  # fmt: skip
    prompt = handlers.composition_to_prompt(studio, value)
    assert [(s.text, round(s.weight, 4), s.lang) for s in prompt.segments] == [
        ("a ", 2.0, "en"), ("heart", 2.8, "en"), (" in ", 2.0, "en"), ("green", 1.8182, "en"), (" (literal)", 1.0, None)]
    result = handlers.generate(studio, prompt, quick())
    restored, _, _ = handlers.restore(studio, Image.open(result.paths[0]))
    assert handlers.composition_to_prompt(studio, restored) == prompt  # restored cards hold escaped text
    from multifusion import parse_prompt

    written = parse_prompt(Image.open(result.paths[0]).text["parameters"].split("\n")[0])  # the canonical form
    assert [(s.text, s.weight) for s in written.segments] == [(s.text, s.weight) for s in prompt.segments]


def test_sizes_above_the_native_one_are_said_and_png_info_errors_read_plainly(studio):
    assert "trained at 64×64 px" in handlers.size_notice(studio.runtime, 128, 64)
    assert handlers.size_notice(studio.runtime, 64, 48) == "" and handlers.size_notice(studio.runtime, None, "x") == ""
    with pytest.raises(PromptError) as refused:
        handlers.png_info(Image.new("RGB", (8, 8)))
    assert "`" not in str(refused.value) and "no generation parameters" in str(refused.value)


def test_a_job_of_a_closed_tab_does_not_start_when_its_turn_comes(studio):
    studio.leave("closed-tab")
    with pytest.raises(Cancelled):
        with studio.job("closed-tab", 1.0):
            pass
    with studio.job("another-tab", 1.0):
        pass
    assert len(studio.line) == 0


def test_a_job_cancelled_between_its_click_and_its_start_does_not_run(studio):
    mark = studio.cancels("tab")  # what the click recorded
    studio.cancel("tab")  # Cancel pressed while the job waited (or while Gradio was starting it)
    with pytest.raises(Cancelled):
        with studio.job("tab", 1.0, clicked=mark):
            pass
    with studio.job("tab", 1.0, clicked=studio.cancels("tab")):  # the next click runs
        pass
    assert len(studio.line) == 0
