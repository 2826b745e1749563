"""The runtime wrapper: prompt cache, seeds independent of batching, settings checks, out-of-memory errors."""

import numpy as np
import pytest
import torch

from multifusion import MultimodalPrompt, OutOfMemoryError, PromptError, TextSegment
from multifusion.runtime import MAX_SEED, GenerationSettings, Runtime, RuntimeOptions, image_seed, pick_dtype


@pytest.fixture
def runtime(pipe):
    return Runtime(pipe, RuntimeOptions(device="cpu"))


def count_encoder_calls(runtime):
    calls = []
    original = runtime.pipe.encoder.forward
    runtime.pipe.encoder.forward = lambda *a, **k: calls.append(1) or original(*a, **k)
    return calls


def test_cache_hit_encodes_nothing(runtime, red_image):
    calls = count_encoder_calls(runtime)
    prompt = MultimodalPrompt.of("a photo of", red_image)
    runtime.generate(prompt, GenerationSettings(steps=2, seed=1))
    assert len(calls) == 2  # prompt and unconditional negative
    runtime.generate(MultimodalPrompt.of("a photo of", red_image.copy()), GenerationSettings(steps=3, seed=2))
    assert len(calls) == 2 and runtime.cache.hits == 2
    runtime.generate(prompt.with_weight(1, 0.5), GenerationSettings(steps=2))
    assert len(calls) == 3  # a new weight is a new encoding


def test_cached_generation_equals_uncached(runtime):
    prompt = MultimodalPrompt.of("a red circle", TextSegment(" on the left", 2.0))
    first = runtime.generate(prompt, GenerationSettings(steps=2, seed=5))[0]
    second = runtime.generate(prompt, GenerationSettings(steps=2, seed=5))[0]
    direct = runtime.pipe(prompt, num_inference_steps=2, guidance_scale=5.0, negative_prompt=None,
                          generator=[torch.Generator().manual_seed(5)]).images[0]  # fmt: skip
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert np.array_equal(np.asarray(first), np.asarray(direct))


def test_image_depends_on_its_own_seed_not_the_batch(runtime):
    batch = runtime.generate("a blue star", GenerationSettings(steps=2, seed=10, num_images=3))
    single = runtime.generate("a blue star", GenerationSettings(steps=2, seed=12))
    assert np.array_equal(np.asarray(batch[2]), np.asarray(single[0]))
    assert not np.array_equal(np.asarray(batch[0]), np.asarray(batch[1]))


def test_progress_reports_every_step(runtime):
    steps = []
    runtime.generate("a circle", GenerationSettings(steps=3), on_step=lambda i, n: steps.append((i, n)))
    assert steps == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize(
    "settings, message",
    [
        (GenerationSettings(steps=0), "steps"),
        (GenerationSettings(steps=2.5), "steps"),
        (GenerationSettings(seed=-1), "seed"),
        (GenerationSettings(num_images=100), "number of images"),
        (GenerationSettings(guidance=float("nan")), "guidance"),
        (GenerationSettings(width=30), "multiple of 4"),
        (GenerationSettings(height=4096), "height"),
        (GenerationSettings(manipulate="all"), "manipulation mode"),
        (GenerationSettings(negative="(x:9)"), "outside"),
    ],
)
def test_bad_settings_are_prompt_errors(runtime, settings, message):
    with pytest.raises(PromptError, match=message):
        runtime.generate("a circle", settings)


def test_out_of_memory_becomes_a_clear_error(runtime, monkeypatch):
    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(runtime.pipe), "__call__", exhausted)
    with pytest.raises(OutOfMemoryError, match="fewer or smaller images"):
        runtime.generate("a circle", GenerationSettings(steps=1))


def test_load_from_a_directory(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    runtime = Runtime.load(tmp_path, RuntimeOptions(device="cpu", cache_size=1))
    assert runtime.device.type == "cpu" and runtime.pipe.unet.dtype == torch.float32
    assert runtime.generate("a circle", GenerationSettings(steps=1))[0].size == (64, 64)


def test_dtype_choice():
    assert pick_dtype(torch.device("cuda")) == torch.float16
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cuda"), "bfloat16") == torch.bfloat16
    with pytest.raises(PromptError):
        pick_dtype(torch.device("cpu"), "int8")


def test_every_image_is_exactly_its_seed_alone(runtime):
    """By default each image is its own U-Net call, so image j of any prompt in a request is bit-identical to that
    prompt and seed generated alone (what restoring a PNG relies on)."""
    prompts = ["a red circle", MultimodalPrompt.of("ein blauer Stern", TextSegment(" links", 2.0))]
    calls, steps = [], []
    original = runtime.pipe.unet.forward
    runtime.pipe.unet.forward = lambda *a, **k: calls.append(a[0].shape[0]) or original(*a, **k)
    settings = GenerationSettings(steps=2, seed=MAX_SEED, num_images=2)
    many = runtime.generate_many(prompts, settings, on_step=lambda i, n: steps.append((i, n)))
    runtime.pipe.unet.forward = original
    assert calls == [2] * 8  # conditional + unconditional, one image at a time: 4 images x 2 steps
    assert steps == [(i, 8) for i in range(1, 9)]  # progress counts every image's steps
    for prompt, images in zip(prompts, many):
        for j, image in enumerate(images):
            (alone,) = runtime.generate(prompt, GenerationSettings(steps=2, seed=image_seed(MAX_SEED, j)))
            assert np.array_equal(np.asarray(image), np.asarray(alone))


def test_batch_images_makes_one_call_that_matches_single_generation_up_to_rounding(runtime):
    batched_runtime = Runtime(runtime.pipe, RuntimeOptions(device="cpu", batch_images=True))
    prompts = ["a red circle", MultimodalPrompt.of("ein blauer Stern", TextSegment(" links", 2.0)), "un cœur vert"]
    settings = GenerationSettings(steps=2, seed=4, num_images=2)
    calls = []
    original = runtime.pipe.unet.forward
    runtime.pipe.unet.forward = lambda *a, **k: calls.append(a[0].shape[0]) or original(*a, **k)
    batched = batched_runtime.generate_many(prompts, settings)
    assert calls == [12, 12]  # 3 prompts x 2 images x (conditional + unconditional), in one call per step
    runtime.pipe.unet.forward = original
    for prompt, images in zip(prompts, batched):
        alone = runtime.generate(prompt, settings)
        for a, b in zip(images, alone):  # batched convolutions may round differently by one level at most
            assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1
