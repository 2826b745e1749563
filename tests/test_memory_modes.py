"""Serving big models on the GPUs people have: memory modes, LoRAs, the serving planner, ZeroGPU durations and
regional compilation, on tiny components of both families (what can run on a CPU runs here)."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from multifusion import MultimodalPrompt, PromptError
from multifusion.families.qwen_image.family import QwenImageEditPlusFamily
from multifusion.families.qwen_image.tiny import save_tiny_qwen_image_edit_plus, tiny_qwen_image_edit_plus
from multifusion.metadata import PARAMETERS_KEY, generation_record, read_record, save_png
from multifusion.model_card import ModelCard
from multifusion.runtime import DEFAULT_MODEL, GenerationSettings, Runtime, RuntimeOptions
from multifusion.shapes.scorer import main_object
from multifusion.testing import tiny_pipeline

RED = Image.new("RGB", (64, 64), (220, 30, 30))
TINY_QWEN_CARD = ModelCard(settings={"native_size": 64, "reference_pixels": 4096, "default_steps": 2})


def qwen_family():
    return QwenImageEditPlusFamily(tiny_qwen_image_edit_plus(), TINY_QWEN_CARD)


FAMILIES = {"fused": (tiny_pipeline, "a red circle"), "qwen_image": (qwen_family, MultimodalPrompt.of(RED, "a cat"))}


def drawn(runtime, prompt, **settings):
    return np.asarray(runtime.generate(prompt, GenerationSettings(steps=2, seed=4, **settings))[0])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("offload", ["model", "group", "group-leaf"])
def test_each_offload_mode_that_runs_on_a_cpu_gives_the_same_image(family, offload):
    build, prompt = FAMILIES[family]
    plain = drawn(Runtime(build(), RuntimeOptions(device="cpu")), prompt)
    offloaded = Runtime(build(), RuntimeOptions(device="cpu", offload=offload))
    assert np.array_equal(drawn(offloaded, prompt), plain)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(offload="sequential"), "on a CPU there is none"),
        (dict(device_map="balanced"), "this machine has 0 CUDA GPU"),
        (dict(offload="disk"), "offload must be one of"),
        (dict(quantize="4bit"), "bitsandbytes"),
        (dict(quantize="int8wo"), "apply while a model loads"),
    ],
)
def test_a_memory_mode_that_cannot_apply_is_one_clear_error(options, message):
    if options.get("quantize") == "int8wo" and __import__("importlib").util.find_spec("torchao") is None:
        message = "needs torchao, an optional extra"
    with pytest.raises(PromptError, match=message):
        Runtime(tiny_pipeline(), RuntimeOptions(device="cpu", **options))


def test_int8_weights_draw_the_same_shapes_on_the_tiny_model_and_nearly_the_same_qwen_image(tmp_path):
    pytest.importorskip("torchao", reason="quantized weights need the quant extra: pip install 'multifusion[quant]'")
    prompts = ["a green heart", "ein blauer Stern", "un triangle vert"]
    plain = Runtime.load(DEFAULT_MODEL, RuntimeOptions(device="cpu"))
    quantized = Runtime.load(DEFAULT_MODEL, RuntimeOptions(device="cpu", quantize="int8wo"))
    linear = next(m for m in quantized.pipe.unet.modules() if isinstance(m, torch.nn.Linear))
    assert "Int8" in type(linear.weight).__name__  # the U-Net's linear layers hold int8 weights
    for prompt in prompts:
        settings = GenerationSettings(seed=2)
        a, b = main_object(plain.generate(prompt, settings)[0]), main_object(quantized.generate(prompt, settings)[0])
        assert a is not None and b is not None and (a.shape, a.colour) == (b.shape, b.colour), prompt

    folder = save_tiny_qwen_image_edit_plus(tmp_path / "qwen")
    exact = drawn(Runtime.load(folder, RuntimeOptions(device="cpu")), MultimodalPrompt.of(RED, "a cat")).astype(int)
    close = drawn(Runtime.load(folder, RuntimeOptions(device="cpu", quantize="int8wo")), MultimodalPrompt.of(RED, "a cat")).astype(int)
    assert np.abs(exact - close).mean() < 3 and np.abs(exact - close).max() < 40


def make_lora(path, declared=None):
    """A small random LoRA on the tiny transformer's attention, written as diffusers writes LoRAs."""
    from diffusers import QwenImageEditPlusPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = tiny_qwen_image_edit_plus().transformer
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    QwenImageEditPlusPipeline.save_lora_weights(path.parent, transformer_lora_layers=get_peft_model_state_dict(transformer),
                                                weight_name=path.name, safe_serialization=True)  # fmt: skip
    if declared:
        from safetensors.torch import load_file, save_file

        save_file(load_file(path), path, metadata={"format": "pt", "multifusion": json.dumps(declared)})
    return path


def test_a_lora_changes_the_picture_its_scale_0_does_not_and_the_png_records_it(tmp_path):
    lora = make_lora(tmp_path / "style.safetensors")
    prompt = MultimodalPrompt.of(RED, "a cat")
    without = drawn(Runtime(qwen_family(), RuntimeOptions(device="cpu")), prompt)
    with_lora = Runtime(qwen_family(), RuntimeOptions(device="cpu", loras=(f"{lora}:0.8",)))
    assert not np.array_equal(drawn(with_lora, prompt), without)
    assert np.array_equal(drawn(Runtime(qwen_family(), RuntimeOptions(device="cpu", loras=(f"{lora}:0",))), prompt), without)

    settings = with_lora.complete(GenerationSettings(steps=2, seed=4))
    record = generation_record(prompt, settings.record(), "tiny", **with_lora.record_facts())
    png = Image.open(save_png(with_lora.generate(prompt, settings)[0], tmp_path / "out.png", record))
    assert read_record(png)["loras"] == [{"name": "style", "scale": 0.8, "hash": record["loras"][0]["hash"]}]
    assert len(record["loras"][0]["hash"]) == 12 and f'Lora hashes: "style: {record["loras"][0]["hash"]}"' in png.text[PARAMETERS_KEY]


def test_a_lora_declares_its_steps_guidance_and_shift_which_become_the_defaults(tmp_path):
    lora = make_lora(tmp_path / "fast.safetensors", {"steps": 3, "guidance": 1.0, "shift": 3.0})
    runtime = Runtime(qwen_family(), RuntimeOptions(device="cpu", loras=(str(lora),)))
    assert (runtime.default_steps, runtime.default_guidance) == (3, 1.0)
    assert runtime.pipe.scheduler.config.base_shift == runtime.pipe.scheduler.config.max_shift == pytest.approx(np.log(3))
    assert runtime.complete(GenerationSettings()).steps == 3
    lightning = make_lora(tmp_path / "Qwen-Image-Lightning-8steps-V1.0.safetensors")  # the Lightning files' own names
    assert Runtime(qwen_family(), RuntimeOptions(device="cpu", loras=(str(lightning),))).default_steps == 8


def test_lora_mistakes_are_clear_errors(tmp_path):
    with pytest.raises(PromptError, match="no such file"):
        Runtime(qwen_family(), RuntimeOptions(device="cpu", loras=(str(tmp_path / "missing.safetensors"),)))
    with pytest.raises(PromptError, match="scale must be a number from -10 to 10"):
        Runtime(qwen_family(), RuntimeOptions(device="cpu", loras=(f"{tmp_path}/x.safetensors:99",)))
    lora = make_lora(tmp_path / "style.safetensors")
    with pytest.raises(PromptError, match="does not take LoRAs"):
        Runtime(tiny_pipeline(), RuntimeOptions(device="cpu", loras=(str(lora),)))


def test_regional_compilation_compiles_the_repeated_block_and_draws_the_same():
    prompt = MultimodalPrompt.of(RED, "a cat")
    eager = drawn(Runtime(qwen_family(), RuntimeOptions(device="cpu")), prompt)
    compiled = Runtime(qwen_family(), RuntimeOptions(device="cpu", compile_unet=True, compile_backend="eager"))
    blocks = compiled.pipe.transformer.transformer_blocks
    assert all(block._compiled_call_impl is not None for block in blocks)  # each block, not the whole model
    assert getattr(compiled.pipe.transformer, "_compiled_call_impl", None) is None
    assert np.array_equal(drawn(compiled, prompt), eager)


@pytest.mark.parametrize("variant", ["Qwen/Qwen-Image-Edit-2509", "Qwen/Qwen-Image-Edit-2511"])
def test_the_serving_plan_of_each_released_variant_prints_offline(variant, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "multifusion.cli", "plan", "--serve", variant], capture_output=True,
                            text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "shipped snapshot" in out and "| transformer | 20.43 B | 38.1 | 19.0 |" in out and "| text_encoder | 8.29 B |" in out
    for gpu in ("12 GB", "16 GB", "24 GB", "48 GB", "80 GB"):
        assert f"| {gpu} |" in out
    assert "| 80 GB | on the GPU, bf16 weights |" in out and "| 12 GB | model offload, 4-bit weights |" in out


def test_zero_gpu_asks_for_the_time_each_request_costs(monkeypatch, tmp_path):
    """Without the `spaces` package: a stand-in records the duration each call asks for."""
    from ui.handlers import Studio
    from ui.launch import zero_gpu_wrapper
    from ui.zero_gpu import MAX_SECONDS, MIN_SECONDS

    asked = []

    def gpu(duration):
        def decorate(fn):
            def call(*args, **kwargs):
                asked.append(duration(*args, **kwargs))
                return fn(*args, **kwargs)

            return call

        return decorate

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    studio = Studio(Runtime(qwen_family(), RuntimeOptions(device="cpu")), "tiny", work_dir=tmp_path)
    wrap = zero_gpu_wrapper(studio)
    run = wrap(lambda studio, prompt, settings, **kw: "ran", lambda *a, **k: 1)
    sizes = [GenerationSettings(steps=2), GenerationSettings(steps=40, num_images=4), GenerationSettings(steps=150, num_images=8, width=128, height=128)]
    assert [run(studio, "a cat", s) for s in sizes] == ["ran"] * 3
    assert MIN_SECONDS <= asked[0] < asked[1] < asked[2] == MAX_SECONDS  # 2.0 s a step until one is measured
    studio.runtime.seconds_per_cost = 0.5  # measured on this Space: asks follow the measurement
    run(studio, "a cat", sizes[1])
    assert asked[-1] < asked[1]
