"""Attention manipulation in the MMDiT of Qwen-Image: a key bias on the joint attention of every block.

`QwenImageTransformer2DModel` runs one attention over [conditioning tokens | image tokens], where the image tokens
are the noisy latents followed by each reference image's latents (in prompt order). A segment's weight f becomes
log f on the key columns it owns: its conditioning tokens, and for an image segment its reference latents too, so
an image's weight acts on what the model reads of it and on what it copies of it.

`JointKeyBiasProcessor` wraps the transformer's own processor and hands every call without a `key_bias` to it
untouched, so neutral weights are upstream's computation, bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_qwenimage import apply_rotary_emb_qwen

from ...attention import as_mask, masked_value, wrap_processors


class JointKeyBiasProcessor:
    """Upstream's double-stream joint attention with an additive key bias (B, S_txt + S_img) when one is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,  # the image stream (B, S_img, C)
        encoder_hidden_states: torch.Tensor | None = None,  # the conditioning stream (B, S_txt, C)
        encoder_hidden_states_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if key_bias is None:
            return self.inner(attn, hidden_states, encoder_hidden_states, encoder_hidden_states_mask, attention_mask,
                              image_rotary_emb)  # fmt: skip
        seq_txt, seq_img = encoder_hidden_states.shape[1], hidden_states.shape[1]
        if key_bias.shape != (hidden_states.shape[0], seq_txt + seq_img):
            raise ValueError(f"key_bias has shape {tuple(key_bias.shape)}, expected {(hidden_states.shape[0], seq_txt + seq_img)}")
        bias = as_mask(key_bias, hidden_states.dtype)
        if encoder_hidden_states_mask is not None:  # upstream's padding mask, as part of the bias
            padded = torch.cat([~encoder_hidden_states_mask.bool(), bias.new_zeros(bias.shape[0], seq_img, dtype=torch.bool)], 1)
            bias = bias.masked_fill(padded, masked_value(bias.dtype))
        head_dim = attn.inner_dim // attn.heads

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, S, C) -> (B, S, H, D)
            return x.unflatten(-1, (-1, head_dim))

        img_q, img_k, img_v = heads(attn.to_q(hidden_states)), heads(attn.to_k(hidden_states)), heads(attn.to_v(hidden_states))
        txt_q, txt_k = heads(attn.add_q_proj(encoder_hidden_states)), heads(attn.add_k_proj(encoder_hidden_states))
        txt_v = heads(attn.add_v_proj(encoder_hidden_states))
        if attn.norm_q is not None:
            img_q = attn.norm_q(img_q)
        if attn.norm_k is not None:
            img_k = attn.norm_k(img_k)
        if attn.norm_added_q is not None:
            txt_q = attn.norm_added_q(txt_q)
        if attn.norm_added_k is not None:
            txt_k = attn.norm_added_k(txt_k)
        if image_rotary_emb is not None:
            img_freqs, txt_freqs = image_rotary_emb
            img_q, img_k = apply_rotary_emb_qwen(img_q, img_freqs, use_real=False), apply_rotary_emb_qwen(img_k, img_freqs, use_real=False)
            txt_q, txt_k = apply_rotary_emb_qwen(txt_q, txt_freqs, use_real=False), apply_rotary_emb_qwen(txt_k, txt_freqs, use_real=False)

        joint = dispatch_attention_fn(
            torch.cat([txt_q, img_q], 1), torch.cat([txt_k, img_k], 1), torch.cat([txt_v, img_v], 1),
            attn_mask=bias[:, None, None, :], dropout_p=0.0, is_causal=False,
            backend=getattr(self.inner, "_attention_backend", None), parallel_config=getattr(self.inner, "_parallel_config", None),
        ).flatten(2, 3)  # (B, S_txt + S_img, C)  # fmt: skip
        joint = joint.to(txt_q.dtype)
        img_out = attn.to_out[0](joint[:, seq_txt:].contiguous())
        if len(attn.to_out) > 1:
            img_out = attn.to_out[1](img_out)
        return img_out, attn.to_add_out(joint[:, :seq_txt].contiguous())


def install_joint_key_bias(transformer: torch.nn.Module) -> None:
    """Wrap every attention processor of `transformer` in `JointKeyBiasProcessor` (idempotent)."""
    wrap_processors(transformer, JointKeyBiasProcessor)
