"""Refine a fused pipeline to new phrasings and new image styles: stages 3(c) and 4 again, the pipeline its own
teacher.

A trained MultiFusion pipeline already draws what its canonical English captions say. Refining teaches a copy of
its encoder to encode what the training frames say in any wording and language, and what a reference image shows
however it was drawn, so that the pipeline's own U-Net reads them as it reads the canonical caption; then only the
U-Net's cross-attention is re-aligned to the refined encoder, as in stage 4. Nothing is trained from scratch, so a
model gains free phrasing and robust image prompts in a fraction of the full recipe's time (on a large model: the
paper's alignment data changed, the diffusion model kept).

Three phases, each under `train()` (resumable, logged):
(a) refine-lm: the LM (with adapters), vision encoder and prefix learn the training frames' phrasings in five
    languages and restatements "<image> = caption" of varied reference images (MAGMA-style).
(b) refine-align: through the teacher U-Net's cross-attention (`training.cross_attention.CrossAttentionReader`), a
    paraphrase in any language, the scene's objects' varied images, and the canonical English caption itself,
    encoded by the student, must be read like the teacher's encoding of the canonical English caption;
    token-matching InfoNCE keeps each nearer its own scene than the batch's others and (`near_miss_negatives`) than
    its scene with one detail wrong (a star drawn as a triangle, a colour, swapped sides), or (`binding_negatives`)
    with its colours or sides traded between its objects (`world.misbound`); the LM loss stays as a regulariser. A
    share `pair_prob` of scenes has two objects, and of their paraphrases a share `loose_pair_prob` joins the
    objects by filler words in no frame's order (`captions.loosely_joined`), so that an unfamiliar phrasing keeps
    both objects.
(c) refine-realign: only `attn2` of the U-Net trains, on English training-frame captions or the objects' varied
    images (never both), with a share of empty prompts for guidance; the teacher's prediction for the bare English
    caption (or for nothing) is a second target, weighted `teacher_weight` on image, mixed and empty prompts and
    `text_teacher_weight` on captions.

A phase of 0 steps is skipped: with `lm_steps` and `align_steps` 0 a round only re-aligns the U-Net's
cross-attention to the encoder it already has.

In all three a share `terse_share` of the captions is typed as tags ("blue star", "STAR, BLUE", "red circle +
blue star": `captions.terse_caption`); 0 in `refine`, set by the config's `tags` rounds (`multifusion train all`).
Every draw (scenes, captions, images, noise) comes from the config's `seed`, so the rounds of `train all` replay
one another's batches; a round at another seed was no better (run v34 in `reports/RUNS.md`).

    multifusion train refine --from weights/multifusion-tiny --config tiny --out runs/refined
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from ...pipeline import MultiFusionPipeline
from ...prompt import MultimodalPrompt
from ...training.cross_attention import CrossAttentionReader, cross_attention_modules
from ...training.encoder_step import EncoderStep
from ...training.loop import train
from ...training.losses import diffusion_loss, info_nce, token_matching
from ..augment import varied_reference
from ..captions import LANGUAGES, N_FRAMES, caption, loosely_joined, random_caption
from ..world import Scene, misbound, near_miss, random_object, random_scene
from .data import encode_latents, fitting, noise_scheduler, save_pipeline, scenes
from .multilingual_encoder import object_prompt, restated
from .realign_cross_attention import condition


def load_student(source: Path, max_length: int) -> MultiFusionPipeline:
    """The pipeline to refine, its encoder set to crop image prompts to content and to lay prompts out to
    `max_length` tokens (free phrasing takes more tokens than the canonical captions its tokenizer was made for)."""
    pipe = MultiFusionPipeline.from_pretrained(source)
    pipe.set_progress_bar_config(disable=True)
    pipe.encoder.register_to_config(crop_to_content=True, max_length=max_length)
    pipe.encoder.lm.config.max_position_embeddings = max(max_length, pipe.encoder.lm.config.max_position_embeddings)
    return pipe


def teacher_reader(teacher: MultiFusionPipeline, config: dict[str, Any], n: int = 64) -> CrossAttentionReader:
    """The teacher U-Net's cross-attention with the queries it asks of `n` canonical English captions."""
    items = scenes(n, config["seed"] + 3)
    conditioning = teacher.encode([MultimodalPrompt.of(caption(scene, "en")) for scene, _ in items]).embeds
    latents = encode_latents(teacher.vae, items, config["canvas"])
    return CrossAttentionReader(teacher.unet, conditioning, latents, noise_scheduler(config), seed=config["seed"])


def run(config: dict[str, Any], out: Path, accelerator: Accelerator, source: Path, resume: bool = False,
        name: str = "refine", overrides: dict[str, Any] | None = None) -> Path:
    """Refine the pipeline at `source` into OUT/`name`/pipeline, with the config's `refine` section (its keys in
    `overrides` replaced)."""
    c, canvas = {**config["refine"], **(overrides or {})}, config["canvas"]
    torch.manual_seed(config["seed"])
    teacher = MultiFusionPipeline.from_pretrained(source).to(accelerator.device)
    teacher.set_progress_bar_config(disable=True)
    for module in (teacher.encoder, teacher.unet, teacher.vae):
        module.requires_grad_(False)
    pipe = load_student(source, c["max_length"]).to(accelerator.device)
    tokenizer, inner = pipe.tokenizer, pipe.encoder
    inner.requires_grad_(False)
    encoder = accelerator.prepare(inner)
    step = EncoderStep(encoder, inner, tokenizer, pipe.vision_processor, accelerator.device)
    reader = teacher_reader(teacher, config)
    rng = random.Random(config["seed"])
    stage, batch, room = out / name, c["batch_size"], c["max_length"] - 1
    terse = c.get("terse_share", 0.0)
    wrong = near_miss if c.get("near_miss_negatives") else misbound if c.get("binding_negatives") else None  # hard negatives
    phrased = lambda scene, lang: fitting(lambda: random_caption(scene, lang, rng, terse_share=terse), tokenizer, room)  # noqa: E731

    def lm_loss(_: int) -> torch.Tensor:
        prompts = []
        for i in range(batch):
            scene = random_scene(rng)
            if i % 2:  # a varied reference image restated as a caption of its object
                obj = random_object(rng)
                text = fitting(lambda: random_caption(Scene((obj,)), rng.choice(LANGUAGES), rng, terse_share=terse),
                               tokenizer, room - 8)  # fmt: skip
                prompts.append(restated(varied_reference(obj, rng), text))
            elif rng.random() < 0.5:
                pair = restated(phrased(scene, rng.choice(LANGUAGES)), phrased(scene, rng.choice(LANGUAGES)))
                fits = len(tokenizer(pair.segments[0].text, add_special_tokens=False).input_ids) <= room
                prompts.append(pair if fits else MultimodalPrompt.of(phrased(scene, rng.choice(LANGUAGES))))
            else:
                prompts.append(MultimodalPrompt.of(phrased(scene, rng.choice(LANGUAGES))))
        return step.lm_loss(*step(prompts))

    def paraphrase(scene: Scene, lang: str) -> str:  # a training frame, or (a share of pairs) filler-joined objects
        if len(scene.objects) == 2 and rng.random() < c["loose_pair_prob"]:
            return fitting(lambda: loosely_joined(scene, lang, rng), tokenizer, room)
        return phrased(scene, lang)

    def align_loss(_: int) -> torch.Tensor:
        group = [random_scene(rng, 2 if rng.random() < c["pair_prob"] else 1) for _ in range(batch // 4)]
        canonical = [MultimodalPrompt.of(caption(s, "en", rng.randrange(N_FRAMES), rng.random() < 0.5)) for s in group]
        with torch.no_grad():
            target = teacher.encode(canonical).embeds  # (G, T0, D)
        en_inputs, en_hidden = step(canonical)
        other_inputs, other_hidden = step([MultimodalPrompt.of(paraphrase(s, rng.choice(LANGUAGES))) for s in group])
        _, image_hidden = step([object_prompt(s, rng, c["mixed_prob"]) for s in group])
        read_alike = 3 * reader.distance(torch.cat([en_hidden, other_hidden, image_hidden]), target)
        t, missed = c["align_temperature"], None
        if wrong:  # each scene one detail wrong, in English: a reading must rank it lower
            _, missed = step([MultimodalPrompt.of(caption(wrong(s, rng), "en", rng.randrange(N_FRAMES))) for s in group])
        contrast = lambda hidden: info_nce(token_matching(hidden, en_hidden), t, None if missed is None else token_matching(hidden, missed))  # noqa: E731
        return (read_alike + contrast(other_hidden) + contrast(image_hidden)
                + 0.5 * (step.lm_loss(en_inputs, en_hidden) + step.lm_loss(other_inputs, other_hidden)))  # fmt: skip

    everything = [*inner.parameters()]
    for name, loss, steps in (("refine-lm", lm_loss, c["lm_steps"]), ("refine-align", align_loss, c["align_steps"])):
        if steps:  # 0 skips the phase
            inner.requires_grad_(True)
            train(name, everything, [encoder], loss, steps, c["lr"], stage, accelerator, resume)
    inner.requires_grad_(False)
    inner.eval()
    if not c["realign_steps"]:  # 0: an align-only round, beside the U-Net it started from
        return save_pipeline(pipe, stage / "pipeline")

    unet = pipe.unet
    unet.requires_grad_(False)
    cross_attention = [p for m in cross_attention_modules(unet) for p in m.parameters()]
    for p in cross_attention:
        p.requires_grad_(True)
    unet = accelerator.prepare(unet)
    scheduler = noise_scheduler(config)
    items = scenes(c["scenes"], config["seed"] + 4)
    latents = encode_latents(pipe.vae, items, canvas)

    def realign_loss(_: int) -> torch.Tensor:
        index = rng.sample(range(len(items)), c["realign_batch_size"])
        prompts = [condition(items[i][0], rng, tokenizer, c["max_length"], c) for i in index]
        conditioning = pipe.encode(prompts).embeds
        # every prompt is also pulled towards the teacher reading the bare English caption (empty: nothing), image,
        # mixed and empty ones by `teacher_weight`, captions by `text_teacher_weight`: re-aligning for new
        # phrasings keeps what images, guidance and the canonical captions already drew
        weights = torch.tensor([c["teacher_weight"] if p.images or not p.segments else c.get("text_teacher_weight", 0.0)
                                for p in prompts])  # (0 without the key: the recipe of v2 to v9)
        guided = weights > 0
        with torch.no_grad():  # the teacher runs only on the guided samples
            canonical = [MultimodalPrompt.of(caption(items[i][0], "en")) if p.segments else p
                         for i, p, g in zip(index, prompts, guided) if g]  # fmt: skip
            teacher_conditioning = teacher.encode(canonical).embeds if canonical else None

        def teacher_prediction(noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            prediction, mask = torch.zeros_like(noisy), guided.to(noisy.device)
            if teacher_conditioning is not None:
                prediction[mask] = teacher.unet(noisy[mask], t[mask], teacher_conditioning).sample
            return prediction

        return diffusion_loss(unet, scheduler, latents[index].to(accelerator.device), conditioning,
                              teacher=teacher_prediction, teacher_weights=weights)  # fmt: skip

    train("refine-realign", cross_attention, [unet], realign_loss, c["realign_steps"], c["realign_lr"], stage, accelerator, resume)
    pipe.unet = accelerator.unwrap_model(unet).eval()
    return save_pipeline(pipe, stage / "pipeline")

