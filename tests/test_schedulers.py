"""Samplers by name, and the default sampler and steps a model declares, which the runtime, CLI and pipeline use."""

import json

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from multifusion import MultiFusionPipeline, PromptError
from multifusion.runtime import GenerationSettings, Runtime, RuntimeOptions
from multifusion.schedulers import SCHEDULERS, make_scheduler, save_defaults, scheduler_name
from multifusion.testing import tiny_pipeline

from conftest import differs, generate


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_sampler_keeps_the_models_noise_schedule(shared_pipe, name):
    base = {k: v for k, v in shared_pipe.scheduler.config.items() if k != "_use_default_values"}
    zero_snr = name != "dpm++2m-karras"  # refused on such schedules: see the next test
    scheduler = make_scheduler(name, {**base, "prediction_type": "v_prediction", "rescale_betas_zero_snr": zero_snr})
    assert scheduler_name(scheduler) == name
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.rescale_betas_zero_snr == zero_snr
    assert scheduler.config.beta_schedule == base["beta_schedule"]


def test_karras_spacing_is_refused_on_a_zero_terminal_snr_schedule():
    """It draws noise there (48 % single accuracy on multifusion-tiny at 10 steps, benchmarks/steps.py)."""
    from multifusion.runtime import DEFAULT_MODEL

    with pytest.raises(PromptError, match="dpm\\+\\+2m-karras does not suit this model's zero-terminal-SNR"):
        Runtime.load(DEFAULT_MODEL, RuntimeOptions(device="cpu", scheduler="dpm++2m-karras"))


def test_unknown_sampler_is_a_prompt_error(shared_pipe):
    with pytest.raises(PromptError, match="unknown scheduler 'plms'; choose one of dpm\\+\\+2m"):
        make_scheduler("plms", shared_pipe.scheduler.config)


def test_a_models_declared_defaults_are_what_runs(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    save_defaults(tmp_path, "unipc", 7, guidance_end=0.5)
    assert json.loads((tmp_path / "model_index.json").read_text())["default_steps"] == 7
    runtime = Runtime.load(tmp_path, RuntimeOptions(device="cpu"))
    assert runtime.scheduler_name == "unipc" and runtime.default_steps == 7 and runtime.default_guidance_end == 0.5
    guided = {end: generate(runtime.pipe, "a red circle", steps=4, guidance_end=end) for end in (None, 0.5, 1.0)}
    assert np.array_equal(guided[None], guided[0.5]) and differs(guided[None], guided[1.0])
    assert runtime.complete(GenerationSettings()).steps == 7
    assert runtime.complete(GenerationSettings(steps=3)).steps == 3
    seen = []
    runtime.generate("a red circle", on_step=lambda i, n: seen.append((i, n)))
    assert seen[-1] == (7, 7)

    steps = []
    runtime.pipe("a red circle", callback_on_step_end=lambda p, i, t, tensors: steps.append(i) or tensors)
    assert len(steps) == 7  # the pipeline itself defaults to the model's steps

    chosen = Runtime.load(tmp_path, RuntimeOptions(device="cpu", scheduler="euler"))
    assert chosen.scheduler_name == "euler" and chosen.pipe.scheduler.config.num_train_timesteps == 1000


def test_a_model_without_declared_defaults_runs_25_steps(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    index.pop("default_steps")
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    assert MultiFusionPipeline.from_pretrained(tmp_path).config.default_steps == 25


def test_the_unet_is_compiled_on_cuda_only_unless_asked(pipe):
    runtime = Runtime(pipe, RuntimeOptions(device="cpu"))
    assert not runtime.compiled and runtime.pipe.unet._compiled_call_impl is None  # what nn.Module.compile() sets
    seen = []
    runtime.pipe.unet.register_forward_hook(lambda *a: seen.append(1))
    runtime.warm_up()  # one image at the model's default steps
    assert len(seen) == runtime.default_steps


def test_a_compiled_unet_compiles_each_new_size_once_however_many_sizes(pipe):
    """Five shapes, guidance stopping halfway: ten graphs, past dynamo's default limit of 8 (under which the fifth
    shape ran uncompiled); a shape run before compiles nothing and is the first to time the device; compiled
    images are the eager ones."""
    pipe.register_to_config(default_guidance_end=0.5)  # each size: a guided batch of 2, then 1
    eager = Runtime(tiny_pipeline(), RuntimeOptions(device="cpu"))
    eager.pipe.register_to_config(default_guidance_end=0.5)
    torch._dynamo.reset()
    runtime = Runtime(pipe, RuntimeOptions(device="cpu", compile_unet=True, compile_backend="eager"))
    graphs = lambda: counters["stats"]["unique_graphs"]  # noqa: E731
    sides = [pipe.size_multiple * k for k in (4, 5, 6, 7)]
    for side in sides:
        settings = GenerationSettings(steps=2, width=side, height=side)
        assert runtime.compiles(settings)
        before = graphs()
        runtime.generate("a red circle", settings)
        assert graphs() - before == 2 and not runtime.compiles(settings)
    before, again = graphs(), GenerationSettings(steps=2, width=sides[-1], height=sides[0], seed=3)
    assert runtime.compiles(again)  # a new shape, though both sides were seen
    compiled = np.asarray(runtime.generate("a red circle", again)[0], dtype=int)
    assert graphs() - before == 2 and np.abs(compiled - np.asarray(eager.generate("a red circle", again)[0], dtype=int)).max() <= 1
    assert runtime.seconds_per_cost is None  # a compile's seconds would inflate the studio's wait estimates
    before = graphs()
    runtime.generate("a blue square", GenerationSettings(steps=2, width=sides[0], height=sides[0], seed=5))
    assert graphs() == before and runtime.seconds_per_cost is not None
