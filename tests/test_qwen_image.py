"""The Qwen-Image-Edit-Plus family on tiny random components built offline: equivalence with upstream diffusers,
the interleaved layout, the weights' mechanics, and the CLI, API and studio serving it (`pytest -k qwen_image`)."""

import base64
import io
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus import VAE_IMAGE_SIZE
from PIL import Image

from multifusion import ImageSegment, MultimodalPrompt, PromptError, TextSegment
from multifusion.families.qwen_image.family import QwenImageEditPlusFamily
from multifusion.families.qwen_image.layout import check_template, condition_images, layout_chat
from multifusion.families.qwen_image.tiny import save_tiny_qwen_image_edit_plus, tiny_qwen_image_edit_plus
from multifusion.images import to_data_url
from multifusion.metadata import METADATA_KEY, PARAMETERS_KEY, read_record
from multifusion.model_card import ModelCard
from multifusion.runtime import GenerationSettings, Runtime, RuntimeOptions

RED, BLUE = Image.new("RGB", (64, 64), (220, 30, 30)), Image.new("RGB", (48, 64), (30, 60, 220))
NOISE = Image.effect_noise((64, 64), 80).convert("RGB")


@pytest.fixture(scope="module")
def qwen_image_dir(tmp_path_factory):
    return save_tiny_qwen_image_edit_plus(tmp_path_factory.mktemp("qwen-image"))


@pytest.fixture(scope="module")
def runtime(qwen_image_dir):
    """The tiny model as a user loads it: by its folder, the family read from model_index.json."""
    return Runtime.load(qwen_image_dir, RuntimeOptions(device="cpu"))


def pixels(runtime, prompt, **settings):
    settings = {"steps": 2, "seed": 5, **settings}
    return np.asarray(runtime.generate(prompt, GenerationSettings(**settings))[0], dtype=np.int16)


def test_qwen_image_loads_as_its_family_and_declares_what_the_studio_needs(runtime):
    info = runtime.info
    assert info.family == "QwenImageEditPlusPipeline"
    assert (info.native_side, info.default_steps, info.size_multiple, info.max_images) == (64, 4, 16, 3)  # card + family
    assert info.manipulate_modes == ("both", "encoder", "transformer") and info.default_auto_balance is False
    with pytest.raises(PromptError, match="one of both, encoder, transformer"):
        runtime.complete(GenerationSettings(manipulate="unet"))


def test_qwen_image_template_system_part_is_what_upstream_drops(caplog):
    pipe = tiny_qwen_image_edit_plus()
    before = pipe.prompt_template_encode.split("{}")[0]
    assert len(pipe.tokenizer(before, add_special_tokens=False)["input_ids"]) == pipe.prompt_template_encode_start_idx == 64
    pipe.prompt_template_encode_start_idx = 60  # a tokenizer that disagrees is said, not silently misaligned
    with caplog.at_level(logging.WARNING):
        check_template(pipe)
    assert "drops 60" in caplog.text


def test_qwen_image_neutral_images_first_is_upstream_bit_for_bit():
    """Embeddings, mask and image equal diffusers' QwenImageEditPlusPipeline on the same components, at upstream's
    reference size: with true CFG against an empty negative (guidance 4), and with one pass (guidance 1)."""
    pipe = tiny_qwen_image_edit_plus()
    family = QwenImageEditPlusFamily(pipe, ModelCard(settings={"native_size": 64}))
    assert family.reference_pixels == VAE_IMAGE_SIZE
    runtime = Runtime(family, RuntimeOptions(device="cpu"))
    prompt = MultimodalPrompt.of(RED, BLUE, "a watercolour of a red circle")

    ours = family.encode(prompt.validate(), "both", False)
    embeds, mask = pipe.encode_prompt(prompt="a watercolour of a red circle", image=condition_images([RED, BLUE], pipe), device="cpu")
    assert torch.equal(ours.embeds, embeds) and mask is None and bool(ours.mask.all())  # upstream drops an all-ones mask

    for guidance, negative in ((4.0, ""), (1.0, None)):
        mine = runtime.generate(prompt, GenerationSettings(steps=2, guidance=guidance, seed=3, width=64, height=32))[0]
        theirs = pipe(image=[RED, BLUE], prompt="a watercolour of a red circle", negative_prompt=negative, true_cfg_scale=guidance,
                      num_inference_steps=2, height=32, width=64, generator=torch.Generator().manual_seed(3)).images[0]  # fmt: skip
        assert np.array_equal(np.asarray(mine), np.asarray(theirs)), f"guidance {guidance}"


def test_qwen_image_images_sit_where_the_prompt_puts_them_and_order_matters(runtime):
    pipe = runtime.pipe
    interleaved = MultimodalPrompt.of("a cat like", RED, "next to", BLUE).validate()
    layout = layout_chat(interleaved, pipe)
    tokens = pipe.tokenizer.convert_ids_to_tokens(layout.input_ids[0].tolist())
    ids = layout.segment_ids[0].tolist()
    first_image = tokens.index("<|vision_start|>")
    assert set(ids[: layout.system_tokens]) == {-1} and ids[-1] == -1  # the template carries no segment
    assert ids[first_image] == 1 and ids[layout.system_tokens] == 0  # text, then "Picture 1: <image>" in its place
    assert pipe.tokenizer.decode(layout.input_ids[0, ids.index(1) : first_image]).strip() == "Picture 1:"
    assert tokens.count("<|vision_start|>") == 2 and ids[len(ids) - 1 - tokens[::-1].index("<|vision_end|>")] == 3

    swapped = MultimodalPrompt.of("next to", BLUE, "a cat like", RED).validate()
    assert not torch.equal(runtime.encode(interleaved).embeds, runtime.encode(swapped).embeds)


@pytest.mark.parametrize("manipulate", ["encoder", "transformer", "both"])
def test_qwen_image_an_image_at_weight_0_is_not_in_the_picture(runtime, manipulate):
    def drawn(image):
        prompt = MultimodalPrompt.of(RED, "a picture of", ImageSegment(image, weight=0.0), TextSegment(" in watercolour"))
        return pixels(runtime, prompt, manipulate=manipulate)

    assert np.array_equal(drawn(BLUE.resize((64, 64))), drawn(NOISE))
    with_it = MultimodalPrompt.of(RED, "a picture of", ImageSegment(NOISE, weight=0.5), TextSegment(" in watercolour"))
    assert not np.array_equal(pixels(runtime, with_it, manipulate=manipulate), drawn(NOISE))  # a weight above 0 shows


def test_qwen_image_a_text_fragment_at_weight_0_is_not_in_the_picture(runtime):
    tokenizer = runtime.pipe.tokenizer
    assert len(tokenizer(" red")["input_ids"]) == len(tokenizer(" blue")["input_ids"])  # same positions after it

    def drawn(word):
        return pixels(runtime, MultimodalPrompt.of(RED, "a", TextSegment(word, weight=0.0), TextSegment(" circle")))

    assert np.array_equal(drawn(" red"), drawn(" blue"))


def test_qwen_image_a_weight_between_0_and_1_moves_towards_the_prompt_without_the_segment(runtime):
    def drawn(weight):
        prompt = MultimodalPrompt.of(RED, TextSegment("a photo of a cat", weight=weight), ImageSegment(NOISE, weight=weight))
        return pixels(runtime, prompt, steps=3).astype(np.float64)

    without, full = drawn(0.0), drawn(1.0)
    distances = [np.abs(drawn(w) - without).mean() for w in (0.1, 0.5)]
    assert distances[0] < distances[1] < np.abs(full - without).mean()


def test_qwen_image_auto_balance_up_weights_text_only_where_images_outnumber_it(runtime):
    with_image = MultimodalPrompt.of(RED, "a cat").validate()
    text_only = MultimodalPrompt.of("a cat").validate()
    assert not torch.equal(runtime.encode(with_image, auto_balance=True).embeds, runtime.encode(with_image, auto_balance=False).embeds)
    assert torch.equal(runtime.encode(text_only, auto_balance=True).embeds, runtime.encode(text_only, auto_balance=False).embeds)
    balanced = runtime.family.encode(with_image, "both", True)
    assert balanced.image_bias is None and balanced.text_bias is not None  # text up-weighted, images as they are


def test_qwen_image_neutral_weights_leave_the_transformer_untouched(runtime):
    from multifusion.families.qwen_image.attention import JointKeyBiasProcessor

    fresh = Runtime(tiny_qwen_image_edit_plus(), RuntimeOptions(device="cpu"))
    fresh.generate(MultimodalPrompt.of(RED, "a cat"), GenerationSettings(steps=2, width=32, height=32))
    assert not any(isinstance(p, JointKeyBiasProcessor) for p in fresh.pipe.transformer.attn_processors.values())


def test_qwen_image_text_only_prompts_draw_and_bad_prompts_are_clear_errors(runtime):
    assert pixels(runtime, "a red circle").shape == (64, 64, 3)  # no reference latents: upstream cannot, we can
    with pytest.raises(PromptError, match="has 4 images; the limit is 3"):
        runtime.generate(MultimodalPrompt.of(RED, RED, BLUE, NOISE), GenerationSettings(steps=1))
    with pytest.raises(PromptError, match="negative prompt of this model takes text only"):
        runtime.generate(MultimodalPrompt.of(RED), GenerationSettings(steps=1, negative=MultimodalPrompt.of(BLUE)))
    with pytest.raises(PromptError, match="multiple of 16"):
        runtime.generate("a cat", GenerationSettings(steps=2, width=40))
    with pytest.raises(PromptError, match="at least 2 steps"):  # its shifted schedule divides by zero at 1 step
        runtime.generate("a cat", GenerationSettings(steps=1))


def run_cli(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "multifusion.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_qwen_image_cli_generates_from_interleaved_weighted_images(qwen_image_dir, tmp_path):
    RED.save(tmp_path / "A.png")
    BLUE.save(tmp_path / "B.png")
    result = run_cli("generate", "<a> (watercolour:1.3) (<b>:0.5)", "--image", "a=A.png", "--image", "b=B.png", "--model",
                     str(qwen_image_dir), "--steps", "2", "--width", "64", "--height", "64", "--num-images", "2", "--out",
                     "x.png", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("x-1.png", "x-2.png"):
        text = Image.open(tmp_path / name).text
        assert METADATA_KEY in text and text[PARAMETERS_KEY].startswith("<a> (watercolour:1.3) (<b>:0.5)\n")
        assert "Weights in: both" in text[PARAMETERS_KEY] and "Sampler: Euler" in text[PARAMETERS_KEY]
    refused = run_cli("eval", "--model", str(qwen_image_dir), "--quick", cwd=tmp_path)
    assert refused.returncode == 2 and "only MultiFusion models draw" in refused.stderr


@pytest.fixture(scope="module")
def qwen_image_app(runtime, qwen_image_dir, tmp_path_factory):
    from conftest import free_port

    from ui import Studio, build_demo
    from ui.launch import launch_options

    studio = Studio(runtime, "tiny-qwen-image", card=ModelCard.load(qwen_image_dir), work_dir=tmp_path_factory.mktemp("studio"))
    demo = build_demo(studio)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/", studio
    demo.close()


def decode_png(url):
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_qwen_image_api_generate_and_compare_serve_weighted_image_segments(qwen_image_app):
    from gradio_client import Client

    client = Client(qwen_image_app[0], verbose=False)
    prompt = {"segments": [{"type": "image", "image": to_data_url(RED), "name": "a"},
                           {"type": "text", "text": "in watercolour", "weight": 1.3},
                           {"type": "image", "image": to_data_url(BLUE), "name": "b", "weight": 0.5}]}  # fmt: skip
    answer = client.predict(prompt=prompt, settings={"steps": 2, "num_images": 2, "manipulate": "transformer"}, api_name="/generate")
    images = [decode_png(url) for url in answer["images"]]
    assert [im.size for im in images] == [(64, 64)] * 2
    assert all(METADATA_KEY in im.text and PARAMETERS_KEY in im.text for im in images)  # the PNGs carry both records
    assert answer["metadata"][0]["settings"]["manipulate"] == "transformer"
    assert answer["metadata"][0]["prompt"]["segments"][2]["weight"] == 0.5

    compared = client.predict(texts={"en": "a red circle", "de": "ein roter Kreis"}, settings={"steps": 2}, api_name="/compare")
    assert set(compared["images"]) == {"en", "de"} and compared["similarity"]["en"] == pytest.approx(1.0)
    assert all(METADATA_KEY in decode_png(url).text for url in compared["images"].values())
    with pytest.raises(Exception, match="one of both, encoder, transformer"):
        client.predict(prompt=prompt, settings={"steps": 2, "manipulate": "unet"}, api_name="/generate")


def test_qwen_image_studio_composes_and_generates_in_a_browser(qwen_image_app):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright to run browser tests")
    import shutil

    from test_browser import CHROMIUM, FLAGS, SHOTS, drop_file, open_studio, png_bytes

    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_studio(page, qwen_image_app[0])
        assert "up to 3 images a prompt" in page.inner_text("#mf-model")
        page.get_by_label("transformer").wait_for(timeout=30000)  # the settings may mount after the composer's cards
        assert page.get_by_label("transformer").count() == 1 and page.get_by_label("unet").count() == 0
        page.locator(".mf-text").first.fill("a cat in watercolour")
        drop_file(page, '.mf-gap[data-index="0"]', "red.png", png_bytes((220, 30, 30)))
        page.wait_for_selector(".mf-card-image img")
        page.locator("#mf-steps input[type=number]").fill("2")
        page.click("#mf-generate")
        page.wait_for_selector("#mf-gallery img", timeout=60000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "qwen-image-studio.png"), full_page=True)
        browser.close()
    newest = max(qwen_image_app[1].output_dir.glob("*.png"), key=lambda path: path.stat().st_mtime)
    segments = read_record(Image.open(newest))["prompt"]["segments"]
    assert [(s["type"], s.get("text")) for s in segments] == [("image", None), ("text", "a cat in watercolour")]
