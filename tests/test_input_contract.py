"""The input contract shared by the Python API, the app's handlers, the HTTP API and the CLI: one answer per
input, a clear `PromptError` for every bad one, no crash, no internals and no megabyte echoed back."""

import base64
import io
import os
import subprocess
import sys

import gradio as gr
import pytest
from PIL import Image

from multifusion import ImageSegment, MultimodalPrompt, PromptError
from multifusion.images import WORKING_SIDE, load_image
from multifusion.runtime import MAX_SEED, GenerationSettings, image_seed
from ui import handlers
from ui.demo import user_errors

INVISIBLE = [" ", "   \t\n", "\x00", "\u200b\u200d\ufeff", "\u00a0\u2003"]


@pytest.mark.parametrize("text", INVISIBLE)
def test_a_prompt_of_only_invisible_text_is_empty_everywhere(text):
    with pytest.raises(PromptError, match="empty"):
        MultimodalPrompt.of(text).validate()
    with pytest.raises(PromptError, match="empty"):
        MultimodalPrompt.from_json('{"segments": [{"type": "text", "text": %s}]}' % json_string(text))
    with pytest.raises(PromptError, match="at least one language"):
        handlers.compare_languages(None, {"en": text}, GenerationSettings())


def json_string(text):
    import json

    return json.dumps(text)


def test_a_blank_fragment_between_images_is_still_a_separator():
    red = Image.new("RGB", (8, 8), "red")
    MultimodalPrompt.of(ImageSegment(red), " ", ImageSegment(red)).validate()


@pytest.mark.parametrize("where", ["text", "name", "negative", "compare"])
def test_lone_surrogates_are_refused_by_name(where):
    bad = "a red \ud800 circle"
    with pytest.raises(PromptError, match="not valid Unicode"):
        if where == "text":
            MultimodalPrompt.of(bad).validate()
        elif where == "name":
            MultimodalPrompt((ImageSegment(Image.new("RGB", (4, 4)), name=bad),)).validate()
        elif where == "negative":
            handlers.settings_from({"negative": bad})
        else:
            handlers.compare_languages(None, {"de": bad}, GenerationSettings())


def test_huge_numbers_are_out_of_range_not_a_crash():
    huge = 10**400
    with pytest.raises(PromptError, match="outside"):
        MultimodalPrompt.from_json('{"segments": [{"type": "text", "text": "a", "weight": %d}]}' % huge)
    with pytest.raises(PromptError, match="guidance .* is outside"):
        handlers.settings_from({"guidance": huge})
    with pytest.raises(PromptError, match="seed must be a whole number"):
        handlers.settings_from({"seed": huge})


@pytest.mark.parametrize("value", ["false", 0, [], {}])
def test_auto_balance_takes_only_true_or_false(value):
    with pytest.raises(PromptError, match="auto_balance must be true or false"):
        handlers.settings_from({"auto_balance": value})


def test_auto_balance_null_is_the_models_default():
    assert handlers.settings_from({"auto_balance": None}).auto_balance is None  # filled in by Runtime.complete


@pytest.mark.parametrize("value", [3, True, [], ["a", "b"]])
def test_the_negative_prompt_is_a_text_or_a_prompt(value):
    with pytest.raises(PromptError, match="negative prompt must be a text or a prompt"):
        handlers.settings_from({"negative": value})


def test_negative_prompt_errors_say_negative_prompt():
    with pytest.raises(PromptError, match=r"^negative prompt, segment 1"):
        handlers.settings_from({"negative": "(blurry:9)"})


@pytest.mark.parametrize("texts, message", [({"de": None}, "de: the prompt must be a text"),
                                            ({"en": "a", "fr": 3}, "fr: the prompt must be a text"),
                                            ({"pt": "um círculo"}, "unknown language")])  # fmt: skip
def test_compare_refuses_what_it_used_to_drop(texts, message):
    with pytest.raises(PromptError, match=message):
        handlers.compare_languages(None, texts, GenerationSettings())


def test_messages_never_echo_a_megabyte():
    key = "k" * 1_000_000
    with pytest.raises(PromptError) as caught:
        handlers.settings_from({key: 1})
    assert len(str(caught.value)) < 300
    with pytest.raises(PromptError) as caught:
        MultimodalPrompt.from_dict({"segments": [{"type": "text", "text": "a", key: 1}]})
    assert len(str(caught.value)) < 300


def test_seeds_wrap_so_every_recorded_seed_is_valid():
    assert [image_seed(MAX_SEED - 1, i) for i in range(3)] == [MAX_SEED - 1, MAX_SEED, 0]
    for i in range(3):
        handlers.settings_from({"seed": image_seed(MAX_SEED - 1, i)})  # each can be asked for again


def _png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("size, message", [((1048576, 16), "each side may be at most"), ((16777216, 1), "each side"),
                                           ((4000, 100), "aspect ratio")])  # fmt: skip
def test_extreme_image_shapes_are_refused_from_the_header(size, message, monkeypatch):
    """Image bombs (a 1048576x16 PNG of 49 KB once took 13 s and 3 GB) are refused before a pixel is decoded."""
    from PIL import ImageFile

    url = _png(*size)

    def no_decoding(self):
        raise AssertionError(f"{self.size} was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(PromptError, match=message):
        load_image(url, max_pixels=4096 * 4096)


def test_large_images_are_reduced_before_any_processor():
    image = load_image(_png(3000, 2000), max_pixels=4096 * 4096)
    assert image.width == WORKING_SIDE and abs(image.height - WORKING_SIDE * 2 / 3) < 1


def test_unexpected_errors_reach_the_client_as_a_short_message_with_an_id(caplog):
    @user_errors
    def broken():
        raise RuntimeError(f"Cannot move {os.getcwd()}/x.png: <_io.BytesIO object at 0x7f00deadbeef>")

    with pytest.raises(gr.Error) as caught:
        broken()
    message = str(caught.value.message)
    assert "error id" in message and "0x" not in message and os.getcwd() not in message and "object at" not in message
    incident = message.split("error id ")[1][:8]
    assert any(incident in record.getMessage() for record in caplog.records)  # the log keeps the traceback


def cli(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "multifusion.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.parametrize("out, message", [("{file}/x.png", "is not a folder"), ("{dir}", "must name a .png"),
                                          ("new/deeper/x.png", "add --mkdir"), ("/proc/x.png", "not writable")])  # fmt: skip
def test_cli_checks_the_output_before_loading_a_model(tmp_path, out, message):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.png").mkdir()
    out = out.format(file=tmp_path / "file", dir=tmp_path / "dir.png")
    if out.endswith("dir.png"):
        message = "is a folder"
    result = cli("generate", "a red circle", "--model", str(tmp_path / "no-model"), "--out", out, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_creates_folders_only_when_asked(tmp_path):
    result = cli("generate", "a red circle", "--model", str(tmp_path / "no-model"), "--mkdir", "--out", "a/b/x.png", cwd=tmp_path)
    assert (tmp_path / "a" / "b").is_dir() and "cannot load" in result.stderr


@pytest.mark.parametrize("device, message", [("xyz", "unknown device"), ("cuda", "not available")])
def test_cli_device_problems_are_one_line(tmp_path, device, message):
    if device == "cuda" and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = cli("generate", "a red circle", "--device", device, "--out", "x.png", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("prompt", ['{"segments": [{"type": "text", "text": "a \\ud800"}]}',
                                    '{"segments": [{"type": "text", "text": "a", "weight": 1%s}]}' % ("0" * 400)])  # fmt: skip
def test_cli_json_prompts_with_bad_values_are_one_line(tmp_path, prompt):
    result = cli("generate", prompt, "--out", "x.png", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_request_costs_follow_the_loaded_model():
    """A 64-px model takes at most 256 px a side and 400 native-image steps a request, whatever a client asks."""
    from multifusion.runtime import Runtime, RuntimeOptions
    from multifusion.testing import tiny_pipeline

    runtime = Runtime(tiny_pipeline(), RuntimeOptions(device="cpu"))
    assert (runtime.native_side, runtime.max_side) == (64, 256)
    with pytest.raises(PromptError, match="width must be a whole number from 4 to 256, got 1024"):  # the model's own limits
        runtime.generate("a red circle", GenerationSettings(width=1024, height=1024, steps=2))
    with pytest.raises(PromptError, match="costs 800 native-image steps"):
        runtime.generate("a red circle", GenerationSettings(num_images=8, steps=100))
    assert len(runtime.generate("a red circle", GenerationSettings(width=128, steps=2))) == 1
