"""A MultiFusion encoder's training step: prompts encoded with gradients, and its language-model loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attention import TEXT
from ..encoder import MultiFusionEncoder
from ..processor import layout_prompts
from ..prompt import MultimodalPrompt


class EncoderStep:
    """Encodes prompts with gradients and computes the stage's losses."""

    def __init__(self, encoder, inner: MultiFusionEncoder, tokenizer, processor, device) -> None:
        """`encoder` is what accelerate prepared (called for the forward pass); `inner` the unwrapped model."""
        self.encoder, self.inner, self.tokenizer, self.processor, self.device = encoder, inner, tokenizer, processor, device
        self.config = inner.config

    def __call__(self, prompts: list[MultimodalPrompt]):
        inputs = layout_prompts(prompts, self.tokenizer, self.config.image_tokens, self.config.max_length)
        images = self.inner.prepare_images(inputs.images)
        pixels = self.processor(images=images, return_tensors="pt").pixel_values if images else None
        hidden = self.encoder(inputs.input_ids.to(self.device), inputs.image_mask.to(self.device), pixels)
        return inputs, hidden  # hidden: (B, T, D)

    def lm_loss(self, inputs, hidden, per_prompt: bool = False) -> torch.Tensor:
        """Next-token loss on text tokens (each predicted from the position before it), averaged over the batch's
        tokens, or (`per_prompt`) over each prompt's tokens and then over prompts: every prompt then counts alike,
        which makes N data-parallel processes (each averaging its own share) train as one with their global batch."""
        logits = self.inner.lm.lm_head(hidden[:, :-1])  # (B, T-1, V)
        targets = inputs.input_ids[:, 1:].to(self.device)
        is_text = (inputs.token_kinds[:, 1:] == TEXT).to(self.device)
        if not per_prompt:
            return F.cross_entropy(logits[is_text], targets[is_text])
        losses = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none") * is_text  # (B, T-1)
        return (losses.sum(1) / is_text.sum(1).clamp(min=1)).mean()
