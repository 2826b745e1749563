"""Fusing pretrained models named by reference: tiny random instances of the real families (a Stable Diffusion
checkpoint with its CLIP text encoder, Llama and Qwen2 LMs with their own tokenizers and widths, CLIP and SigLIP
vision towers), saved in their real on-disk formats, fused, saved, reloaded, and generating."""

import re
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import (AutoModelForCausalLM, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModel,
                          GemmaConfig, GemmaForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, SiglipConfig, SiglipImageProcessor, SiglipModel)  # fmt: skip

from multifusion import MultiFusionPipeline
from multifusion.fusion.assemble import fuse_pretrained
from multifusion.fusion.redimension import fit_state_map, redimension_cross_attention
from multifusion.runtime import GenerationSettings, Runtime, RuntimeOptions
from multifusion.shapes.captions import caption
from multifusion.shapes.world import random_scene
from multifusion.tokenizer import build_tokenizer

SD_WIDTH, LM_WIDTH = 24, 48  # the U-Net reads 24-wide CLIP states; the LM is twice as wide


def tiny_unet():
    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=SD_WIDTH, norm_num_groups=2, attention_head_dim=2,
    )  # fmt: skip


@pytest.fixture(scope="module")
def stable_diffusion(tmp_path_factory):
    """A Stable Diffusion 1.x checkpoint in diffusers layout, its CLIP tokenizer standing in for a tokenizer of
    its own (another vocabulary than the LMs')."""
    tokenizer = build_tokenizer(vocab_size=300)
    tokenizer.model_max_length = 16
    torch.manual_seed(1)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=SD_WIDTH, intermediate_size=37,
                                                num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=16))  # fmt: skip
    vae = AutoencoderKL(block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)  # fmt: skip
    pipe = StableDiffusionPipeline(vae, text_encoder, tokenizer, tiny_unet(), PNDMScheduler(skip_prk_steps=True),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)  # fmt: skip
    path = tmp_path_factory.mktemp("sd")
    pipe.save_pretrained(path)
    return path


def save_lm(family, path):
    tokenizer = build_tokenizer(vocab_size=400)
    common = dict(vocab_size=len(tokenizer), hidden_size=LM_WIDTH, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(2)
    families = {"llama": (LlamaForCausalLM, LlamaConfig), "qwen2": (Qwen2ForCausalLM, Qwen2Config),
                "mistral": (MistralForCausalLM, MistralConfig), "gemma": (GemmaForCausalLM, GemmaConfig)}  # fmt: skip
    model_class, config_class = families[family]
    model = model_class(config_class(**common, **({"head_dim": 12} if family == "gemma" else {})))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_vision(family, path):
    torch.manual_seed(3)
    if family == "clip":  # a vision-only checkpoint
        CLIPVisionModel(CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37,
                                         num_hidden_layers=2, num_attention_heads=4)).save_pretrained(path)  # fmt: skip
        CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    else:  # a two-tower checkpoint, of which the vision half is taken
        tower = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
        SiglipModel(SiglipConfig(text_config={**tower, "vocab_size": 99}, vision_config={**tower, "image_size": 32, "patch_size": 8})).save_pretrained(path)
        SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def captions(n, seed):
    import random

    rng = random.Random(seed)
    return [caption(random_scene(rng), "en") for _ in range(n)]


def test_a_state_map_is_folded_into_the_keys_and_values():
    """Keys and values of the re-dimensioned cross-attention on the LM's states equal the old ones on the mapped
    states, and the saved U-Net reloads with the new width."""
    torch.manual_seed(4)
    new = torch.randn(200, LM_WIDTH)
    truth = torch.randn(LM_WIDTH, SD_WIDTH)
    mapping, r2 = fit_state_map(new, new @ truth, ridge=1e-6)
    assert r2 > 0.999 and torch.allclose(mapping, truth, atol=1e-2)

    unet = tiny_unet()
    before = {name: m.to_k.weight.clone() for name, m in unet.named_modules() if name.endswith("attn2")}
    redimension_cross_attention(unet, LM_WIDTH, truth)
    for name, module in unet.named_modules():
        if name.endswith("attn2"):
            states = torch.randn(3, LM_WIDTH)
            assert torch.allclose(module.to_k(states), (states @ truth) @ before[name].T, atol=1e-4)
    assert unet.config.cross_attention_dim == LM_WIDTH
    with pytest.raises(ValueError, match=r"expected \(48, 24\)"):
        redimension_cross_attention(tiny_unet(), LM_WIDTH, torch.zeros(SD_WIDTH, LM_WIDTH))


@pytest.mark.parametrize("lm_family, vision_family", [("llama", "clip"), ("qwen2", "siglip"), ("mistral", "clip"), ("gemma", "siglip")])
def test_fuse_named_models_save_reload_and_serve(stable_diffusion, tmp_path, lm_family, vision_family):
    lm = save_lm(lm_family, tmp_path / "lm")
    vision = save_vision(vision_family, tmp_path / "vision")
    pipe, r2 = fuse_pretrained(str(stable_diffusion), str(lm), str(vision), captions(64, 0), image_tokens=4,
                               adapter_dim=8, max_length=24)  # fmt: skip
    assert 0 < r2 <= 1  # the fitted start explains part of what the teacher gave the U-Net
    lm_model = AutoModelForCausalLM.from_pretrained(lm)
    for name, tensor in lm_model.state_dict().items():  # every LM weight as saved, a tied output layer included
        assert torch.equal(pipe.encoder.lm.state_dict()[name], tensor), name
    assert pipe.unet.config.cross_attention_dim == pipe.encoder.hidden_size == LM_WIDTH != SD_WIDTH
    pipe.save_pretrained(tmp_path / "fused")

    reloaded = MultiFusionPipeline.from_pretrained(tmp_path / "fused")
    for name, tensor in pipe.unet.state_dict().items():
        assert torch.equal(tensor, reloaded.unet.state_dict()[name]), name
    runtime = Runtime.load(tmp_path / "fused", RuntimeOptions(device="cpu"))
    images = runtime.generate("a red circle", GenerationSettings(steps=2, guidance=3.0, num_images=1))
    assert images[0].size == (32, 32)  # the SD U-Net's native size: sample size 16 x the VAE's factor 2


def test_the_vision_half_of_a_two_tower_checkpoint_keeps_its_weights(tmp_path):
    from multifusion.fusion.assemble import vision_tower

    path = save_vision("siglip", tmp_path / "siglip")
    tower, saved = vision_tower(path), SiglipModel.from_pretrained(path).vision_model
    patch = lambda model: next(v for k, v in model.state_dict().items() if k.endswith("patch_embedding.weight"))  # noqa: E731
    assert torch.equal(patch(tower), patch(saved))


def test_fuse_command_from_a_captioned_image_folder(stable_diffusion, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from multifusion.shapes.export import export_shapes

    data = export_shapes(tmp_path / "data", 48, "webdataset", languages=("en", "de"), shard_size=20)
    command = [sys.executable, "-m", "multifusion.cli", "fuse", "--stable-diffusion", str(stable_diffusion),
               "--lm", str(save_lm("llama", tmp_path / "lm")), "--vision", str(save_vision("clip", tmp_path / "vision")),
               "--captions", str(data), "--image-tokens", "4", "--adapter-dim", "8", "--max-length", "24",
               "--out", str(tmp_path / "fused")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "fused" / "fuse.json").read_text())
    assert 10 < report["captions"] < 48  # the English half of the data only
    assert MultiFusionPipeline.from_pretrained(tmp_path / "fused").unet.config.cross_attention_dim == LM_WIDTH

    result = subprocess.run([*command[:-8], "--captions", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "--captions" in result.stderr
    missing_lm = [*command[:7], str(tmp_path / "no-lm"), *command[8:-1], str(tmp_path / "y")]
    result = subprocess.run(missing_lm, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and "could not load a component" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def fused(stable_diffusion, tmp_path_factory):
    root = tmp_path_factory.mktemp("fused")
    pipe, _ = fuse_pretrained(str(stable_diffusion), str(save_lm("llama", root / "lm")), str(save_vision("clip", root / "vision")),
                              captions(32, 0), image_tokens=4, adapter_dim=8, max_length=24)  # fmt: skip
    pipe.save_pretrained(root / "pipeline")
    return root / "pipeline"


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    from multifusion.shapes.export import export_shapes

    return export_shapes(tmp_path_factory.mktemp("data"), 16, "imagefolder", languages=("en", "fr"), canvas=40)


def realign(fused, data, out, config, *launcher, resume=False):
    result = run_stage("realign", fused, data, out, config, *launcher, resume=resume)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def attn2_weights(path):
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
    return {k: v for k, v in unet.state_dict().items() if ".attn2." in k}, {k: v for k, v in unet.state_dict().items() if ".attn2." not in k}


def test_realign_trains_only_cross_attention_resumes_samples_and_serves(fused, shapes_folder, tmp_path):
    config = {"steps": 4, "batch_size": 2, "resolution": 32, "lr": 1e-3, "image_prob": 0.5, "ema_decay": 0.9,
              "checkpoint_every": 2, "sample_every": 2, "sample_prompts": ["a red circle", "un cercle rouge"]}  # fmt: skip
    out = tmp_path / "run"
    realign(fused, shapes_folder, out, config)
    before_attn, before_rest = attn2_weights(fused)
    after_attn, after_rest = attn2_weights(out / "pipeline")
    assert any(not torch.equal(before_attn[k], after_attn[k]) for k in before_attn)  # cross-attention trained
    assert all(torch.equal(before_rest[k], after_rest[k]) for k in before_rest)  # nothing else moved
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    log = (out / "log.jsonl").read_text()
    realign(fused, shapes_folder, out, config, resume=True)  # finished: resumes to nothing new
    assert (out / "log.jsonl").read_text() == log
    runtime = Runtime.load(out / "pipeline", RuntimeOptions(device="cpu"))
    assert runtime.generate("a red circle", GenerationSettings(steps=2, guidance=3.0))[0].size == (32, 32)


def two_processes() -> tuple[str, ...]:
    """`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2` (gloo) on a free port: what runs a
    stage data-parallel on the CPU (`accelerate launch --cpu --num_processes 2` silently starts one process)."""
    import shutil
    import sys

    from conftest import free_port

    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    return (accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "--main_process_port", str(free_port()))  # fmt: skip


def test_realign_on_two_processes_equals_one_process_with_the_same_global_batch(fused, shapes_folder, tmp_path):
    """Each process reads half of the data; with per-process batch 1 the trained weights equal one process's with
    batch 2."""
    config = {"steps": 3, "resolution": 32, "lr": 1e-3, "image_prob": 0.5, "ema_decay": 0, "sample_every": 0,
              "gradient_checkpointing": False}  # fmt: skip
    realign(fused, shapes_folder, tmp_path / "one", {**config, "batch_size": 2})
    realign(fused, shapes_folder, tmp_path / "two", {**config, "batch_size": 1}, *two_processes())
    one, _ = attn2_weights(tmp_path / "one" / "pipeline")
    two, _ = attn2_weights(tmp_path / "two" / "pipeline")
    before, _ = attn2_weights(fused)
    assert any(not torch.equal(before[k], one[k]) for k in one)
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name


def test_sharded_realign_on_two_processes_trains_and_resumes_as_one_process(fused, shapes_folder, tmp_path):
    """`shard: true` (FSDP2: the LM and the U-Net split over the processes, frozen weights too): 2 processes with
    per-process batch 1 train as 1 process with batch 2, draw sample sheets, and their checkpoint (each process's
    shards of the weights, AdamW's moments and the EMA) resumes as the unsharded one does."""
    config = {"steps": 2, "resolution": 32, "lr": 1e-3, "image_prob": 0.5, "ema_decay": 0.9, "checkpoint_every": 2,
              "sample_every": 2, "sample_prompts": ["a red circle"], "gradient_checkpointing": False, "shard": True}  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    figures = []
    for steps in (2, 4):  # 2 steps, then resumed to 4
        realign(fused, shapes_folder, one, {**config, "steps": steps, "batch_size": 2}, resume=steps > 2)
        result = realign(fused, shapes_folder, two, {**config, "steps": steps, "batch_size": 1}, *two_processes(), resume=steps > 2)
        figures.append((attn2_weights(one / "pipeline")[0], attn2_weights(two / "pipeline")[0]))
    for reference, sharded in figures:
        for name in reference:
            assert torch.allclose(reference[name], sharded[name], atol=1e-5), name
    assert any(not torch.equal(figures[0][1][k], figures[1][1][k]) for k in figures[0][1])  # the resumed steps trained
    assert (two / "samples" / "step-0000004.png").exists()
    held = re.findall(r"(\w+): sharded over 2 processes \(FSDP2\): each holds ([\d,]+) of its ([\d,]+) weights", result.stdout)
    assert sorted(name for name, _, _ in held) == ["encoder", "unet"]
    for _, part, whole in held:  # half each (a row more where a dimension is odd)
        assert int(part.replace(",", "")) <= int(whole.replace(",", "")) * 0.51
    before = attn2_weights(fused)[1]
    assert all(torch.equal(before[k], v) for k, v in attn2_weights(two / "pipeline")[1].items())  # the rest as it was


def test_cached_latents_train_as_encoding_every_epoch_and_refuse_another_vae(fused, shapes_folder, tmp_path):
    """Two epochs with `cache_latents`: the second reads what the first encoded, and the trained weights equal
    a run that encodes every batch; a cache folder made for another resolution is refused."""
    from multifusion.training.captioned_images import CaptionedImages, prepare
    from multifusion.training.latent_cache import LatentCache
    from multifusion.training.latents import to_tensor

    config = {"steps": 16, "batch_size": 2, "resolution": 32, "lr": 1e-3, "image_prob": 0.5, "ema_decay": 0, "sample_every": 0}
    realign(fused, shapes_folder, tmp_path / "plain", config)
    realign(fused, shapes_folder, tmp_path / "cached", {**config, "cache_latents": str(tmp_path / "latents")})
    plain, _ = attn2_weights(tmp_path / "plain" / "pipeline")
    cached, _ = attn2_weights(tmp_path / "cached" / "pipeline")
    for name in plain:
        assert torch.allclose(plain[name], cached[name], atol=1e-5), name
    assert len(list((tmp_path / "latents").glob("*.safetensors"))) == 16  # each of the 16 samples encoded once

    vae = MultiFusionPipeline.from_pretrained(fused).vae
    samples = list(CaptionedImages(shapes_folder))[:3]
    pixels, keys = to_tensor([prepare(s.image, 32) for s in samples]), [s.key for s in samples]
    with torch.no_grad():
        direct = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
    cache = LatentCache(tmp_path / "latents", vae, 32)
    vae.encode = None  # every latent must now come from the disk
    assert torch.allclose(cache.latents(keys, pixels), direct, atol=1e-5) and (cache.hits, cache.misses) == (3, 0)
    with pytest.raises(ValueError, match="another VAE or resolution"):
        LatentCache(tmp_path / "latents", vae, 64)


def run_stage(stage, fused, data, out, config, *launcher, resume=False):
    import json
    import os
    import subprocess
    import sys

    (out.parent / f"{out.name}.json").write_text(json.dumps(config))
    command = [*(launcher or (sys.executable,)), "-m", "multifusion.cli", stage, "--from", str(fused), "--data", str(data),
               "--out", str(out), "--config", str(out.parent / f"{out.name}.json"), *(["--resume"] if resume else [])]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "ACCELERATE_USE_CPU": "1"})


def test_prefix_stage_trains_the_image_prefix_and_adapters_with_the_lm_frozen(fused, shapes_folder, tmp_path):
    from multifusion.encoder import MultiFusionEncoder

    config = {"steps": 3, "batch_size": 2, "resolution": 32, "lr": 1e-3, "ema_decay": 0.9, "checkpoint_every": 2}
    result = run_stage("prefix", fused, shapes_folder, tmp_path / "run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    before = MultiFusionEncoder.from_pretrained(fused, subfolder="encoder").state_dict()
    after = MultiFusionEncoder.from_pretrained(tmp_path / "run" / "pipeline", subfolder="encoder").state_dict()
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"image_prefix", "adapters"}  # the LM and the vision tower stay as pretrained
    runtime = Runtime.load(tmp_path / "run" / "pipeline", RuntimeOptions(device="cpu"))
    assert runtime.generate("a red circle", GenerationSettings(steps=2, guidance=3.0))[0].size == (32, 32)

    result = run_stage("prefix", fused, tmp_path / "nowhere", tmp_path / "bad", config)
    assert result.returncode == 2 and "--data:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("shard", [False, True], ids=["ddp", "sharded"])
def test_prefix_stage_on_two_processes_equals_one_process_with_the_same_global_batch(fused, shapes_folder, tmp_path, shard):
    """As for re-alignment: under 2 processes with batch 1 each, data-parallel or sharded (the LM's layers split
    over the processes), the trained prefix and adapters equal one process's with batch 2 (captions of different
    lengths count alike: the loss is per caption)."""
    from multifusion.encoder import MultiFusionEncoder

    config = {"steps": 3, "resolution": 32, "lr": 1e-3, "ema_decay": 0.9, "gradient_checkpointing": False, "shard": shard}
    for out, batch, launcher in (("one", 2, ()), ("two", 1, two_processes())):
        result = run_stage("prefix", fused, shapes_folder, tmp_path / out, {**config, "batch_size": batch}, *launcher)
        assert result.returncode == 0, result.stderr[-3000:]
    if shard:
        assert "sharded over 2 processes" in result.stdout
        result = run_stage("prefix", fused, shapes_folder, tmp_path / "fp16", {**config, "mixed_precision": "fp16"}, *two_processes())
        assert result.returncode == 1 and "fp16 needs; use mixed precision \"bf16\"" in result.stderr  # before anything runs
    one, two = (MultiFusionEncoder.from_pretrained(tmp_path / out / "pipeline", subfolder="encoder").state_dict() for out in ("one", "two"))
    before = MultiFusionEncoder.from_pretrained(fused, subfolder="encoder").state_dict()
    assert any(not torch.equal(before[k], one[k]) for k in one if k.startswith("image_prefix"))
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name


def test_semantic_bias_tuning_moves_only_the_lms_biases_and_is_refused_where_it_has_none(stable_diffusion, fused, shapes_folder, tmp_path):
    """`semantic_weight` and `bias_tuning`: on a Qwen2 LM (biases in its attention) exactly the LM's biases move,
    besides the prefix and adapters; a Llama LM has none, and the stage says so instead of training nothing."""
    from multifusion.encoder import MultiFusionEncoder

    pipe, _ = fuse_pretrained(str(stable_diffusion), str(save_lm("qwen2", tmp_path / "lm")), str(save_vision("siglip", tmp_path / "vision")),
                              captions(16, 0), image_tokens=4, adapter_dim=8, max_length=24)  # fmt: skip
    pipe.save_pretrained(tmp_path / "qwen2")
    config = {"steps": 3, "batch_size": 3, "resolution": 32, "lr": 1e-2, "ema_decay": 0, "semantic_weight": 1.0, "bias_tuning": True}
    result = run_stage("prefix", tmp_path / "qwen2", shapes_folder, tmp_path / "run", config)
    assert result.returncode == 0, result.stderr[-3000:]
    before = MultiFusionEncoder.from_pretrained(tmp_path / "qwen2", subfolder="encoder").state_dict()
    after = MultiFusionEncoder.from_pretrained(tmp_path / "run" / "pipeline", subfolder="encoder").state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert {k.split(".")[0] for k in moved} == {"image_prefix", "adapters", "lm"}
    assert {k for k in moved if k.startswith("lm.")} == {k for k in before if k.startswith("lm.") and k.endswith(".bias")}

    result = run_stage("prefix", fused, shapes_folder, tmp_path / "llama", config)
    assert result.returncode == 2 and "has no bias terms" in result.stderr and "Traceback" not in result.stderr


def test_plan_counts_what_each_stage_trains_and_refuses_what_cannot_fit(stable_diffusion, fused, shapes_folder, tmp_path):
    import json
    import subprocess
    import sys

    from multifusion.encoder import MultiFusionEncoder
    from multifusion.training.cross_attention import cross_attention_modules
    from multifusion.fusion.plan import FusionConfig, plan

    lm, vision = save_lm("llama", tmp_path / "lm"), save_vision("clip", tmp_path / "vision")
    config = {"stable_diffusion": str(stable_diffusion), "lm": str(lm), "vision": str(vision), "image_tokens": 4,
              "adapter_dim": 8, "max_length": 24, "prefix": {"batch_size": 2, "resolution": 32, "steps": 100},
              "realign": {"batch_size": 2, "resolution": 32, "steps": 1000}}  # fmt: skip
    (tmp_path / "fusion.json").write_text(json.dumps(config))
    prefix, realign = plan(FusionConfig.load(tmp_path / "fusion.json"))
    encoder = MultiFusionEncoder.from_pretrained(fused, subfolder="encoder")
    unet = UNet2DConditionModel.from_pretrained(fused, subfolder="unet")
    assert prefix.trainable == sum(p.numel() for m in (encoder.image_prefix, encoder.adapters) for p in m.parameters())
    assert realign.trainable == sum(p.numel() for m in cross_attention_modules(unet) for p in m.parameters())
    assert prefix.activation_bytes > 0 and realign.activation_bytes > 0
    for stage in (prefix, realign):  # sharded: the more GPUs share the weights, the less each holds
        assert stage.memory(8) < stage.memory(2)
    # ... but the VAE and what is gathered at once stay on every GPU: a model this small gains nothing by it
    assert realign.unsharded == sum(p.numel() for p in AutoencoderKL.from_pretrained(fused, subfolder="vae").parameters())
    assert realign.memory(2) > realign.memory(1) / 2

    run = subprocess.run([sys.executable, "-m", "multifusion.cli", "plan", "--config", str(tmp_path / "fusion.json"),
                          "--gpu-memory", "1"], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0 and "realign" in run.stdout, run.stderr
    log = tmp_path / "log.jsonl"  # a run's measured step times: 0.5 s per realign step
    log.write_text("".join(json.dumps({"stage": "realign", "step": s, "loss": 0.1, "lr": 1e-5, "elapsed_s": e}) + "\n"
                           for s, e in ((0, 0.4), (10, 5.4), (20, 10.4), (20, 0.3), (30, 5.3))))  # a resume from an old log: back to 0 s
    run = subprocess.run([sys.executable, "-m", "multifusion.cli", "plan", "--config", str(tmp_path / "fusion.json"),
                          "--gpu-memory", "0.0001", "--measured", str(log)], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 1 and "1000 steps x 0.50 s (measured) = 0.1 h" in run.stdout
    assert "does not fit" in run.stderr and "batch_size" in run.stderr


def test_stage_settings_are_checked_and_a_resumed_stream_continues_where_it_stopped(shapes_folder):
    from multifusion.fusion.stage_config import StageConfig, endless
    from multifusion.fusion.stage_realign import RealignConfig

    for bad, message in [({"steps": 0}, "steps must be"), ({"steps": 10, "gradient_accumulation_steps": 4}, "multiple of"),
                         ({"mixed_precision": "fp8"}, "mixed_precision"), ({"ema_decay": 1.0}, "ema_decay"),
                         ({"cache_latents": "latents", "center_crop": False}, "center_crop")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            RealignConfig(**bad)
    assert StageConfig(steps=8, checkpoint_every=4, gradient_accumulation_steps=2).steps == 8

    fresh, resumed = endless(shapes_folder, 0, 1, 3), endless(shapes_folder, 0, 1, 3, skip=2)
    keys = lambda item: (item[0], [s.key for s in item[1]])  # noqa: E731
    [next(fresh) for _ in range(2)]
    assert [keys(next(fresh)) for _ in range(5)] == [keys(next(resumed)) for _ in range(5)]  # into the next epoch too
