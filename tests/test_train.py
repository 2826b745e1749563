"""The training recipe end to end on the tiny architecture with a handful of steps: every stage runs, checkpoints,
resumes, and the result loads as a MultiFusionPipeline that generates."""

import json
import os
import random
import shutil
import subprocess
import sys

import pytest
import torch

from multifusion.shapes.recipe.config import load_config


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    config = load_config("tiny")
    config["vae"].update(steps=4, batch_size=4)
    config["unet"].update(steps=3, batch_size=4, scenes=16)
    config["encoder"].update(lm_steps=3, prefix_steps=2, align_steps=2, batch_size=8, vocab_size=400)
    config["realign"].update(steps=3, batch_size=4, scenes=16)
    config["refine"].update(rounds=2, average_last=2, lm_steps=2, align_steps=2, realign_steps=2, batch_size=8, realign_batch_size=4, scenes=16)
    config["tags"] = {"rounds": 1, "terse_share": 0.5}
    root = tmp_path_factory.mktemp("run")
    (root / "smoke.json").write_text(json.dumps(config))
    train(root, "all")
    return root


def train(root, stage, *extra):
    result = subprocess.run(
        [sys.executable, "-m", "multifusion.cli", "train", stage, "--config", str(root / "smoke.json"), "--out",
         str(root / "out"), *extra], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_all_stages_then_generate(smoke):
    out = smoke / "out"
    stages = {"vae", "unet", "encoder", "realign", "refine-1", "refine-2", "average", "tags-1"}
    assert set(json.loads((out / "times.json").read_text())) == stages  # refine rounds, averaged, then a tags round
    assert (out / "tags-1" / "pipeline" / "model_index.json").is_file()
    logs = [json.loads(line) for line in (out / "realign" / "log.jsonl").read_text().splitlines()]
    assert logs[-1]["step"] == 2 and all(l["loss"] == l["loss"] for l in logs)  # finite, logged

    from multifusion import MultiFusionPipeline

    pipe = MultiFusionPipeline.from_pretrained(out / "realign" / "pipeline")
    assert pipe.unet.config.cross_attention_dim == pipe.encoder.hidden_size == 128
    image = pipe("ein roter Kreis", num_inference_steps=2).images[0]
    assert image.size == (64, 64)

    # a finished stage resumes to nothing new
    before = (out / "vae" / "log.jsonl").read_text()
    train(smoke, "vae", "--resume")
    assert (out / "vae" / "log.jsonl").read_text() == before


def test_a_resumed_run_keeps_its_finished_stages_and_times_the_stopped_one_whole(smoke, tmp_path):
    """`train all --resume` after a run stopped in its last stage: the finished stages are kept with their times,
    and the stopped one is timed with the training its earlier run checkpointed, as if it had run once."""
    out = tmp_path / "out"
    shutil.copytree(smoke / "out", out)
    shutil.copy(smoke / "smoke.json", tmp_path)
    finished = json.loads((out / "times.json").read_text())
    del finished["tags-1"]  # stopped in tags-1 ...
    (out / "times.json").write_text(json.dumps(finished))
    checkpoint = out / "tags-1" / "refine-realign-state" / "step.json"
    checkpoint.write_text(json.dumps({**json.loads(checkpoint.read_text()), "elapsed_s": 1000.0}))  # ... 1000 s in
    logs = {name: (out / name / "log.jsonl").read_text() for name in ("unet", "refine-2")}

    result = train(tmp_path, "all", "--resume")
    times = json.loads((out / "times.json").read_text())
    assert {name: times[name] for name in finished} == finished
    assert all(f"{name}: finished earlier" in result.stdout for name in finished)
    assert {name: (out / name / "log.jsonl").read_text() for name in logs} == logs  # not run again
    assert times["tags-1"] >= 1000


def test_a_phase_killed_between_checkpoints_and_resumed_logs_every_step_once(tmp_path):
    """A run killed without a chance to clean up keeps the log lines up to its last checkpoint, and the resumed
    run logs on from there: no step missing, none twice, the clock counting on."""
    script = f"""
import os, sys, torch
from pathlib import Path
from accelerate import Accelerator
from multifusion.training.loop import train
weight = torch.nn.Parameter(torch.ones(3))
model = torch.nn.Module(); model.weight = weight
def loss_fn(step):
    if step == 25 and sys.argv[1] == "kill":
        os._exit(1)  # no flush, no atexit: as a killed process
    return (weight ** 2).sum()
train("phase", [weight], [model], loss_fn, steps=40, lr=0.01, out=Path({str(tmp_path)!r}),
      accelerator=Accelerator(), resume=sys.argv[1] == "resume", checkpoint_every=10)
"""
    killed = subprocess.run([sys.executable, "-c", script, "kill"], capture_output=True, text=True)
    assert killed.returncode == 1, killed.stderr[-2000:]
    resumed = subprocess.run([sys.executable, "-c", script, "resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    logs = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logs] == [0, 10, 20, 30, 39]
    clock = [entry["elapsed_s"] for entry in logs]
    assert clock == sorted(clock)


def test_refine_continues_a_pipeline_to_free_phrasing_and_cropped_images(smoke):
    """`train refine --from PIPELINE`: the result reloads, crops image prompts to content, lays prompts out to the
    refine section's longer length, and takes a held-out phrasing and a large off-centre image prompt."""
    from multifusion import ImageSegment, MultiFusionPipeline, MultimodalPrompt
    from multifusion.shapes.foreign import draw_object
    from multifusion.shapes.world import ShapeObject

    train(smoke, "refine", "--from", str(smoke / "out" / "realign" / "pipeline"))
    pipe = MultiFusionPipeline.from_pretrained(smoke / "out" / "refine" / "pipeline")
    assert pipe.encoder.config.crop_to_content and pipe.encoder.config.max_length == 56
    logs = {json.loads(line)["stage"] for line in (smoke / "out" / "refine" / "log.jsonl").read_text().splitlines()}
    assert logs == {"refine-lm", "refine-align", "refine-realign"}
    reference = draw_object(ShapeObject("star", "red", "large"), 300, (255, 255, 255), random.Random(0))
    prompt = MultimodalPrompt.of("could you please paint ", ImageSegment(reference), "?")
    assert pipe(prompt, num_inference_steps=2).images[0].size == (64, 64)


def refine_with(smoke, tmp_path, **refine):
    """One `train refine` of the smoke run's stage-4 pipeline with `refine` over its config: the start, the result,
    and the phases its log names."""
    from multifusion import MultiFusionPipeline

    config = json.loads((smoke / "smoke.json").read_text())
    config["refine"].update(refine)
    (tmp_path / "smoke.json").write_text(json.dumps(config))
    source = smoke / "out" / "realign" / "pipeline"
    train(tmp_path, "refine", "--from", str(source))
    before, after = (MultiFusionPipeline.from_pretrained(p) for p in (source, tmp_path / "out" / "refine" / "pipeline"))
    logs = {json.loads(line)["stage"] for line in (tmp_path / "out" / "refine" / "log.jsonl").read_text().splitlines()}
    return before, after, logs


def test_refine_with_no_encoder_steps_realigns_only_the_cross_attention(smoke, tmp_path):
    """`lm_steps` and `align_steps` 0: the round skips both encoder phases, keeps the encoder as it was, and trains
    the U-Net's `attn2` modules and nothing else of it."""
    before, after, logs = refine_with(smoke, tmp_path, lm_steps=0, align_steps=0)
    assert logs == {"refine-realign"}
    encoder = dict(before.encoder.named_parameters())
    assert all(torch.equal(encoder[k], v) for k, v in after.encoder.named_parameters())
    unet = dict(before.unet.named_parameters())
    changed = {k for k, v in after.unet.named_parameters() if not torch.equal(unet[k], v)}
    assert changed and all(".attn2." in k for k in changed)


def test_refine_with_no_realign_steps_trains_only_the_encoder(smoke, tmp_path):
    """`realign_steps` 0: an align-only round, whose pipeline keeps the U-Net it started from bit for bit."""
    before, after, logs = refine_with(smoke, tmp_path, lm_steps=0, realign_steps=0)
    assert logs == {"refine-align"}
    unet = dict(before.unet.named_parameters())
    assert all(torch.equal(unet[k], v) for k, v in after.unet.named_parameters())
    encoder = dict(before.encoder.named_parameters())
    assert any(not torch.equal(encoder[k], v) for k, v in after.encoder.named_parameters())


def test_all_ends_with_the_mean_of_the_last_refine_rounds(smoke):
    """OUT/average/pipeline holds the parameter-wise mean of the two rounds' encoder and U-Net, and generates."""
    from multifusion import MultiFusionPipeline

    out = smoke / "out"
    first, second, mean = (MultiFusionPipeline.from_pretrained(out / d / "pipeline") for d in ("refine-1", "refine-2", "average"))
    for name in ("encoder", "unet"):
        a, b, m = (dict(getattr(p, name).named_parameters()) for p in (first, second, mean))
        assert any(not torch.equal(a[k], b[k]) for k in a)  # the rounds differ, so the test can tell
        assert all(torch.allclose(m[k], (a[k] + b[k]) / 2) for k in a)
    assert (out / "average" / "pipeline" / "vocabulary.txt").is_file()
    assert mean("a red circle", num_inference_steps=2).images[0].size == (64, 64)


def test_averaging_refuses_a_lone_pipeline_or_another_architecture(smoke, tmp_path):
    from multifusion.testing import tiny_pipeline
    from multifusion.shapes.recipe.average import average_pipelines

    trained = smoke / "out" / "realign" / "pipeline"
    tiny_pipeline().save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="differs in architecture"):
        average_pipelines([trained, tmp_path / "other"], tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists()  # nothing written
    with pytest.raises(ValueError, match="two or more"):
        average_pipelines([trained], tmp_path / "one")


def test_all_averages_the_last_rounds_the_config_names(tmp_path):
    """Three rounds, the last two averaged (the tiny recipe); an impossible `average_last` is refused before any
    stage runs."""
    from multifusion.cli import _after_stage_four
    from multifusion.errors import PromptError

    out = tmp_path / "out"
    plan = _after_stage_four({"refine": {"rounds": 3, "average_last": 2}}, out)
    assert [name for name, _, _ in plan] == ["refine-1", "refine-2", "refine-3", "average"]
    assert plan[-1][2]["sources"] == [out / "refine-2" / "pipeline", out / "refine-3" / "pipeline"]
    assert plan[2][2]["source"] == out / "refine-2" / "pipeline"  # each round refines the one before
    assert [name for name, _, _ in _after_stage_four({"refine": {"rounds": 2}}, out)] == ["refine-1", "refine-2"]
    tagged = _after_stage_four({"refine": {"rounds": 3, "average_last": 2}, "tags": {"rounds": 2, "terse_share": 0.2}}, out)
    assert [name for name, _, _ in tagged[-3:]] == ["average", "tags-1", "tags-2"]  # tag rounds refine the average
    assert tagged[-2][2] == {"source": out / "average" / "pipeline", "name": "tags-1", "overrides": {"terse_share": 0.2}}
    assert tagged[-1][2]["source"] == out / "tags-1" / "pipeline"
    for bad in (1, 4, "2"):
        with pytest.raises(PromptError, match="average_last"):
            _after_stage_four({"refine": {"rounds": 3, "average_last": bad}}, out)
    config = load_config("tiny")  # a fresh dict, read from its file
    config["refine"]["average_last"] = 9
    (tmp_path / "bad.json").write_text(json.dumps(config))
    result = subprocess.run([sys.executable, "-m", "multifusion.cli", "train", "all", "--config", str(tmp_path / "bad.json"),
                             "--out", str(out)], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "refine.average_last is 9" in result.stderr
    assert not out.exists()  # refused before any stage ran


def test_refine_needs_a_pipeline(smoke):
    result = subprocess.run([sys.executable, "-m", "multifusion.cli", "train", "refine", "--config", "tiny", "--from",
                             str(smoke), "--out", str(smoke / "x")], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "no pipeline (model_index.json)" in result.stderr


def test_unknown_config_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "multifusion.cli", "train", "vae", "--config", "huge", "--out",
                             str(tmp_path)], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "no training config 'huge' (bundled: tiny)" in result.stderr


def test_probe_scores_stage_two(smoke):
    """The stage-2 probe reads generated images with the scorer (here from a barely trained U-Net)."""
    from multifusion.shapes.recipe.probe import probe

    config = json.loads((smoke / "smoke.json").read_text())
    result = probe(config, smoke / "out", n=2, steps=2)
    assert result["n"] == 2 and 0 <= result["both"] <= min(result["shape"], result["colour"]) <= 1
    pairs = probe(config, smoke / "out", n=2, steps=2, objects=2)  # on their sides is the stricter reading
    assert pairs["n"] == 2 and 0 <= pairs["pair_sides"] <= pairs["pair"] <= 1


def test_vae_probe_reports_every_colours_error(smoke):
    """`probe --vae`: per colour, the reconstructed object's RGB error, read from the object's pixels only."""
    import numpy as np

    from multifusion.shapes.recipe.probe import _object_rgb, vae_colour_error
    from multifusion.shapes.render import render_scene
    from multifusion.shapes.world import COLOURS, Scene, ShapeObject

    for colour, rgb in COLOURS.items():
        render = np.asarray(render_scene(Scene((ShapeObject("square", colour, "small"),))), dtype=np.float64)
        assert _object_rgb(render).tolist() == list(rgb)
    errors = vae_colour_error(smoke / "out", canvas=json.loads((smoke / "smoke.json").read_text())["canvas"])
    assert list(errors) == list(COLOURS) and all(len(e) == 3 for e in errors.values())


def test_vae_loss_weights_the_objects_pixels():
    """An error on a shape costs the VAE `object_weight` times the same error on the background."""
    from multifusion.shapes.recipe.autoencoder import object_weighted_mse
    from multifusion.shapes.render import render_scene
    from multifusion.shapes.world import Scene, ShapeObject
    from multifusion.training.latents import to_tensor

    pixels = to_tensor([render_scene(Scene((ShapeObject("circle", "red", "large"),)))])
    on_object, on_background = pixels.clone(), pixels.clone()
    on_object[0, 2, 32, 32] += 0.5  # the circle's centre
    on_background[0, 2, 1, 1] += 0.5  # a corner
    for weight in (5.0, 1.0):
        on_background_cost = object_weighted_mse(on_background, pixels, weight)
        assert object_weighted_mse(on_object, pixels, weight) == pytest.approx(weight * on_background_cost)


def test_re_alignment_captions_come_in_the_languages_the_section_names(shared_pipe):
    """English only by default (the paper's stage 4); `caption_languages` spreads the captions over languages."""
    from multifusion.shapes.recipe.realign_cross_attention import condition
    from multifusion.shapes.world import random_scene

    def captions(**languages):
        rng, section = random.Random(0), {"uncond_prob": 0.0, "image_prob": 0.0, "mixed_prob": 0.0, **languages}
        return [condition(random_scene(rng), rng, shared_pipe.tokenizer, 56, section).segments[0].text.lower()
                for _ in range(200)]  # (captions come in every casing)

    german = ("kreis", "quadrat", "dreieck", "stern", "herz")
    assert not any(word in text for text in captions() for word in german)
    assert all(any(word in text for word in german) for text in captions(caption_languages=["de"]))
    mixed = captions(caption_languages=["en", "de"])
    assert 40 < sum(any(word in text for word in german) for text in mixed) < 160


def test_token_matching_is_a_soft_set_similarity():
    """The alignment similarity: a prompt matches itself fully, whatever the order of its token states, and an
    unrelated prompt less."""
    import torch

    from multifusion.training.losses import token_matching

    a = torch.randn(2, 6, 8)
    shuffled = torch.cat([a[:, :1], a[:, 1:].flip(1)], dim=1)
    similarity = token_matching(a, shuffled)
    assert torch.allclose(similarity.diagonal(), torch.ones(2), atol=1e-5)
    assert (similarity.diagonal() > similarity.fliplr().diagonal()).all()


def test_cross_attention_reader_reads_like_the_unet(smoke):
    """The alignment's reading distance: what the U-Net's cross-attention makes of a conditioning. It is 0 for the
    same states in another order (attention pools over positions), and its outputs are the U-Net's own attn2
    outputs for the recorded queries; unrelated states read differently."""
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from multifusion.training.cross_attention import CrossAttentionReader

    unet = UNet2DConditionModel.from_pretrained(smoke / "out" / "unet" / "model").eval()
    torch.manual_seed(0)
    latents, states = torch.randn(2, 4, 16, 16), torch.randn(2, 40, 128)
    reader = CrossAttentionReader(unet, states, latents, DDPMScheduler(), queries=8)
    assert len(reader.layers) == len(reader(states)) > 0

    layer, queries = reader.layers[0], reader.queries_0
    q_input = torch.linalg.lstsq(layer.to_q.weight, queries.T).solution.T  # inputs whose to_q gives the queries
    expected = layer(q_input[None].expand(2, -1, -1), encoder_hidden_states=states)
    assert torch.allclose(reader(states)[0], expected, atol=1e-4)

    shuffled = states[:, torch.randperm(40)]
    assert reader.distance(shuffled, states) < 1e-6
    assert reader.distance(torch.randn(2, 40, 128), states) > 0.1
