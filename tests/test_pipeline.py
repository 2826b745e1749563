"""MultiFusionPipeline: equivalence with diffusers, save/load, weights a user can see, and input checks."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from multifusion import ImageSegment, MultiFusionPipeline, MultimodalPrompt, PromptError, TextSegment
from multifusion.attention import SegmentBiasProcessor, install_segment_bias
from multifusion.testing import tiny_pipeline

from conftest import differs, generate


def test_same_image_as_stable_diffusion_pipeline_given_the_same_embeddings(pipe):
    prompt = MultimodalPrompt.of("a red circle")
    embeds = pipe.encode([prompt]).embeds
    negative = pipe.encode([MultimodalPrompt()]).embeds
    sd = StableDiffusionPipeline(
        vae=pipe.vae, text_encoder=None, tokenizer=None, unet=pipe.unet, scheduler=pipe.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    sd.set_progress_bar_config(disable=True)
    kwargs = dict(num_inference_steps=3, guidance_scale=4.0, num_images_per_prompt=2, output_type="np")
    expected = sd(prompt_embeds=embeds, negative_prompt_embeds=negative, generator=torch.Generator().manual_seed(3), **kwargs).images
    from_embeds = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, generator=torch.Generator().manual_seed(3), **kwargs).images
    from_prompt = pipe(prompt, generator=torch.Generator().manual_seed(3), **kwargs).images
    assert np.array_equal(expected, from_embeds)
    assert np.array_equal(expected, from_prompt)


def test_save_and_load_round_trip_exactly_in_safetensors(pipe, tmp_path, red_image):
    pipe.save_pretrained(tmp_path)
    files = {p.suffix for p in tmp_path.rglob("*") if p.is_file()}
    assert ".safetensors" in files and not files & {".bin", ".pt", ".pth", ".ckpt"}
    loaded = MultiFusionPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            theirs = loaded.components[name].state_dict()
            assert all(torch.equal(t, theirs[k]) for k, t in module.state_dict().items()), name
    prompt = MultimodalPrompt.of("a photo of", ImageSegment(red_image, 0.5), TextSegment(" large", 2.0))
    assert np.array_equal(generate(pipe, prompt), generate(loaded, prompt))


def test_neutral_weights_are_bit_identical_to_the_unmanipulated_path(red_image):
    prompt = MultimodalPrompt.of("a photo of", TextSegment(" a red circle", 1.0))
    untouched = tiny_pipeline()
    wrapped = tiny_pipeline()
    install_segment_bias(wrapped.unet)
    assert all(isinstance(p, SegmentBiasProcessor) for p in wrapped.unet.attn_processors.values())
    assert not any(isinstance(p, SegmentBiasProcessor) for p in untouched.unet.attn_processors.values())
    assert np.array_equal(generate(untouched, prompt), generate(wrapped, prompt))


def test_an_image_at_weight_zero_does_not_reach_the_picture(pipe, red_image, noise_image):
    def make(image, weight):
        prompt = MultimodalPrompt((TextSegment("a photo of"), ImageSegment(image, weight), TextSegment(" at night")))
        return generate(pipe, prompt)

    assert np.array_equal(make(red_image, 0.0), make(noise_image, 0.0))
    assert differs(make(red_image, 1.0), make(noise_image, 1.0))


@pytest.mark.parametrize("manipulate", ["encoder", "unet", "both"])
def test_changing_a_weight_changes_the_picture(pipe, manipulate):
    def make(weight):
        return generate(pipe, MultimodalPrompt.of("a red circle", TextSegment(" and a blue star", weight)), manipulate=manipulate)

    neutral = make(1.0)
    assert differs(neutral, make(0.0)) and differs(neutral, make(3.0))


def test_same_seed_same_image_and_new_seed_new_image(shared_pipe):
    assert np.array_equal(generate(shared_pipe, "a red circle", seed=1), generate(shared_pipe, "a red circle", seed=1))
    assert differs(generate(shared_pipe, "a red circle", seed=1), generate(shared_pipe, "a red circle", seed=2))


def test_prompt_forms_and_multimodal_negative_prompt(shared_pipe, red_image):
    as_string = generate(shared_pipe, "a (red:1.5) circle")
    as_prompt = generate(shared_pipe, MultimodalPrompt((TextSegment("a "), TextSegment("red", 1.5), TextSegment(" circle"))))
    assert np.array_equal(as_string, as_prompt)
    batch = shared_pipe(["a red circle", "ein blauer Stern"], num_inference_steps=2, output_type="np").images
    assert batch.shape == (2, 64, 64, 3)
    negative = MultimodalPrompt.of("blurry", ImageSegment(red_image, 0.5))
    assert differs(generate(shared_pipe, "a red circle"), generate(shared_pipe, "a red circle", negative_prompt=negative))


def test_callback_runs_every_step_and_can_interrupt(shared_pipe):
    seen = []

    def callback(pipe, step, timestep, tensors):
        seen.append((step, tuple(tensors["latents"].shape)))
        if step == 1:
            pipe._interrupt = True
        return tensors

    shared_pipe("a circle", num_inference_steps=4, callback_on_step_end=callback, output_type="latent")
    assert seen == [(0, (1, 4, 32, 32)), (1, (1, 4, 32, 32))]


def test_guidance_end_guides_only_the_first_share_of_the_steps(shared_pipe, red_image):
    """1.0 is classifier-free guidance throughout; 0 is the prompt alone (as guidance scale 1); between, guided first
    steps and unguided last ones; with AtMan weights too, whose bias is cut to the prompt's half."""
    for prompt in ("a red circle", MultimodalPrompt.of("a (blue:2) star and ", ImageSegment(red_image, 0.5))):
        full = generate(shared_pipe, prompt, steps=4)
        assert np.array_equal(full, generate(shared_pipe, prompt, steps=4, guidance_end=1.0))
        assert np.allclose(generate(shared_pipe, prompt, steps=4, guidance_end=0.0),
                           generate(shared_pipe, prompt, steps=4, guidance_scale=1.0), atol=1e-5)  # fmt: skip
        half = generate(shared_pipe, prompt, steps=4, guidance_end=0.5)
        assert differs(half, full) and differs(half, generate(shared_pipe, prompt, steps=4, guidance_end=0.0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt=""), "empty"),
        (dict(prompt="(a:7)"), "outside"),
        (dict(prompt="a", height=62), "multiples of 4"),
        (dict(prompt="a", manipulate="decoder"), "manipulate"),
        (dict(prompt="a", num_inference_steps=0), "num_inference_steps"),
        (dict(prompt="a", guidance_end=1.5), "guidance_end must be between 0 and 1"),
        (dict(prompt="a", guidance_end=float("nan")), "guidance_end"),
        (dict(prompt=" ".join(["word"] * 80)), "the limit is 48"),
        (dict(prompt=None), "exactly one"),
        (dict(prompt=["a", "b"], negative_prompt=["x", "y", "z"]), "3 negative prompts for 2"),
    ],
)
def test_bad_input_is_a_clear_prompt_error(shared_pipe, kwargs, message):
    with pytest.raises(PromptError, match=message):
        shared_pipe(num_inference_steps=kwargs.pop("num_inference_steps", 1), **kwargs)


def test_too_many_image_tokens_names_the_segment(shared_pipe, red_image):
    prompt = MultimodalPrompt(tuple([TextSegment("x " * 15)] + [ImageSegment(red_image)] * 5))
    with pytest.raises(PromptError, match=r"segment 6 \(image\) takes the prompt to 51 tokens; the limit is 48"):
        shared_pipe(prompt, num_inference_steps=1)
