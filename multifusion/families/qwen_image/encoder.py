"""Qwen2.5-VL as the prompt encoder, with MultiFusion's attention manipulation in every decoder layer.

Neutral weights call the text encoder exactly as upstream's `_get_qwen_prompt_embeds` does. With a key bias,
two things change and nothing else: every decoder layer's attention mask is the causal mask plus the bias (a 4D
float mask, handed to the language model as the per-layer-type mapping transformers accepts), and the rotary
positions, which Qwen2.5-VL derives from the 2D mask, are computed first by the model's own method from the same
2D mask upstream passes, so they stay exactly upstream's.
"""

from __future__ import annotations

import torch

from ...attention import causal_bias_mask
from .layout import ChatLayout


def positions(text_encoder, layout: ChatLayout, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The rotary positions (3, 1, T) the model computes for upstream's call: its own 3D positions where it derives
    them from these inputs, else the plain 1D ones it falls back to."""
    model = text_encoder.model
    found = model.compute_3d_position_ids(
        input_ids=input_ids, image_grid_thw=_on(layout.image_grid_thw, input_ids.device), video_grid_thw=None,
        inputs_embeds=text_encoder.get_input_embeddings()(input_ids), attention_mask=mask, cache=None,
    )  # fmt: skip
    if found is None:
        found = torch.arange(input_ids.shape[1], device=input_ids.device).view(1, 1, -1).expand(3, input_ids.shape[0], -1)
    return found


def encode_layout(text_encoder, layout: ChatLayout, key_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states of the prompt's tokens (the template's system part dropped): (1, T', D) and its mask (1, T').

    `key_bias` (1, T) is log f per token (`attention.key_bias`), added to every layer's pre-softmax scores."""
    device = text_encoder.device
    input_ids = layout.input_ids.to(device)
    mask = torch.ones_like(input_ids)
    kwargs = {}
    if key_bias is not None:
        dtype = text_encoder.get_input_embeddings().weight.dtype
        bias_mask = causal_bias_mask(key_bias.to(device), dtype)  # (1, 1, T, T)
        kwargs["position_ids"] = positions(text_encoder, layout, input_ids, mask)
        mask = {kind: bias_mask for kind in set(text_encoder.config.text_config.layer_types or ["full_attention"])}
    outputs = text_encoder(
        input_ids=input_ids,
        attention_mask=mask,
        pixel_values=_on(layout.pixel_values, device),
        image_grid_thw=_on(layout.image_grid_thw, device),
        output_hidden_states=True,
        **kwargs,
    )
    hidden = outputs.hidden_states[-1][:, layout.system_tokens :]  # (1, T', D)
    return hidden.to(text_encoder.dtype), torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)


def _on(tensor: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device)
