"""Stage 3: the MultiFusion encoder, in three phases.

(a) lm: the language model learns the five languages' captions (next-token prediction).
(b) prefix: MAGMA-style, the vision encoder and image prefix (and the adapters) learn to make the frozen LM
    caption a scene from its image tokens.
(c) align: the "semantic bias tuning" analogue: adapters, prefix and vision encoder learn to embed a caption's
    translations, and the scene's object images, like its English caption (InfoNCE over the batch, with the LM
    loss kept as a regulariser so the encodings stay informative).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import CLIPVisionConfig, LlamaConfig
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from ..attention import TEXT
from ..encoder import MultiFusionEncoder, mean_pool
from ..processor import layout_prompts
from ..prompt import ImageSegment, MultimodalPrompt, TextSegment
from ..shapes.captions import LANGUAGES, N_FRAMES, caption, random_caption
from ..shapes.render import render_reference, render_scene
from ..shapes.world import random_scene
from .data import shared_tokenizer
from .loop import train


def build_encoder(config: dict[str, Any], tokenizer) -> MultiFusionEncoder:
    e = config["encoder"]
    lm = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=e["hidden"], intermediate_size=e["hidden"] * 8 // 3,
        num_hidden_layers=e["layers"], num_attention_heads=e["heads"], num_key_value_heads=e["heads"],
        max_position_embeddings=e["max_length"], tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        image_size=config["canvas"], patch_size=e["vision_patch"], hidden_size=e["vision_hidden"],
        intermediate_size=2 * e["vision_hidden"], num_hidden_layers=e["vision_layers"], num_attention_heads=4,
    )  # fmt: skip
    return MultiFusionEncoder(lm_config=lm.to_dict(), vision_config=vision.to_dict(), image_tokens=e["image_tokens"],
                              adapter_dim=e["adapter_dim"], max_length=e["max_length"])  # fmt: skip


def vision_processor(canvas: int) -> CLIPImageProcessorPil:
    return CLIPImageProcessorPil(size={"shortest_edge": canvas}, crop_size={"height": canvas, "width": canvas})


def object_prompt(scene, rng: random.Random) -> MultimodalPrompt:
    """A scene given by its objects' reference images, sometimes joined by " and "."""
    images = [ImageSegment(render_reference(o, seed=rng.randrange(2**31))) for o in scene.objects]
    if len(images) == 2 and rng.random() < 0.5:
        images.insert(1, TextSegment(" and "))
    return MultimodalPrompt(tuple(images))


class EncoderStep:
    """Encodes prompts with gradients and computes the stage's losses."""

    def __init__(self, encoder, inner: MultiFusionEncoder, tokenizer, processor, device) -> None:
        """`encoder` is what accelerate prepared (called for the forward pass); `inner` the unwrapped model."""
        self.encoder, self.inner, self.tokenizer, self.processor, self.device = encoder, inner, tokenizer, processor, device
        self.config = inner.config

    def __call__(self, prompts: list[MultimodalPrompt]):
        inputs = layout_prompts(prompts, self.tokenizer, self.config.image_tokens, self.config.max_length)
        pixels = self.processor(images=inputs.images, return_tensors="pt").pixel_values if inputs.images else None
        hidden = self.encoder(inputs.input_ids.to(self.device), inputs.image_mask.to(self.device), pixels)
        return inputs, hidden  # hidden: (B, T, D)

    def lm_loss(self, inputs, hidden) -> torch.Tensor:
        """Next-token loss on text tokens (each predicted from the position before it)."""
        logits = self.inner.lm.lm_head(hidden[:, :-1])  # (B, T-1, V)
        targets = inputs.input_ids[:, 1:].to(self.device)
        is_text = (inputs.token_kinds[:, 1:] == TEXT).to(self.device)
        return F.cross_entropy(logits[is_text], targets[is_text])

    @staticmethod
    def pooled(hidden: torch.Tensor) -> torch.Tensor:
        return F.normalize(mean_pool(hidden), dim=-1)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of `a` should match row i of `b` and no other row."""
    logits = a @ b.T / temperature
    targets = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def run(config: dict[str, Any], out: Path, accelerator: Accelerator, resume: bool = False) -> Path:
    e, canvas = config["encoder"], config["canvas"]
    torch.manual_seed(config["seed"])
    tokenizer = shared_tokenizer(config, out)
    encoder = accelerator.prepare(build_encoder(config, tokenizer))
    processor = vision_processor(canvas)
    inner = accelerator.unwrap_model(encoder)
    step = EncoderStep(encoder, inner, tokenizer, processor, accelerator.device)
    rng = random.Random(config["seed"])
    stage = out / "encoder"
    batch = e["batch_size"]

    def lm_loss(_: int) -> torch.Tensor:
        prompts = [MultimodalPrompt.of(random_caption(random_scene(rng), rng.choice(LANGUAGES), rng)) for _ in range(batch)]
        return step.lm_loss(*step(prompts))

    def prefix_loss(_: int) -> torch.Tensor:
        prompts = []
        for _ in range(batch // 2):
            scene = random_scene(rng)
            image = render_scene(scene, seed=rng.randrange(2**31), canvas=canvas)
            prompts.append(MultimodalPrompt((ImageSegment(image), TextSegment(random_caption(scene, rng.choice(LANGUAGES), rng)))))
        return step.lm_loss(*step(prompts))

    def align_loss(_: int) -> torch.Tensor:
        group = [random_scene(rng) for _ in range(batch // 4)]
        frames = [(rng.randrange(N_FRAMES), rng.random() < 0.5) for _ in group]
        english = [MultimodalPrompt.of(caption(s, "en", f, z)) for s, (f, z) in zip(group, frames)]
        other = [MultimodalPrompt.of(caption(s, rng.choice(LANGUAGES[1:]), f, z)) for s, (f, z) in zip(group, frames)]
        images = [object_prompt(s, rng) for s in group]
        en_inputs, en_hidden = step(english)
        other_inputs, other_hidden = step(other)
        _, image_hidden = step(images)
        anchor = step.pooled(en_hidden)
        temperature = e["align_temperature"]
        return (info_nce(step.pooled(other_hidden), anchor, temperature) + info_nce(step.pooled(image_hidden), anchor, temperature)
                + 0.5 * (step.lm_loss(en_inputs, en_hidden) + step.lm_loss(other_inputs, other_hidden)))  # fmt: skip

    adapters = [*inner.adapters.parameters()]
    seeing = [*inner.vision.parameters(), *inner.image_prefix.parameters()]
    for name, params, loss, steps in (
        ("encoder-lm", [*inner.lm.parameters(), *adapters], lm_loss, e["lm_steps"]),
        ("encoder-prefix", seeing + adapters, prefix_loss, e["prefix_steps"]),
        ("encoder-align", seeing + adapters, align_loss, e["align_steps"]),
    ):
        inner.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        train(name, params, [encoder], loss, steps, e["lr"], stage, accelerator, resume)
    inner.requires_grad_(False)
    inner.save_pretrained(stage / "model")
    processor.save_pretrained(stage / "vision_processor")
    return stage / "model"
