"""Attention manipulation (AtMan, Deiseroth et al. 2023) as MultiFusion uses it for per-segment weights.

Meaning of a weight (design §4): every token j of a segment gets the factor f_j = the segment's weight (times
the automatic text/image balance). In each attention that manipulation reaches, log f_j is added to the
pre-softmax scores of key column j, so the post-softmax weight of token j is multiplied by f_j and the row is
renormalised; f_j = 0 masks the column out. The bias goes

- into every self-attention layer of the encoder's language model, as a 4D float attention mask (causal part
  plus the bias), which transformers passes to SDPA unchanged; and
- into the U-Net's cross-attention keys, through `SegmentBiasProcessor`, which wraps whatever attention
  processor the U-Net already has.

When every factor is exactly 1 nothing is built and nothing is installed on the call path, so neutral weights
give bit-identical results to the unmanipulated model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

Manipulate = Literal["encoder", "unet", "both"]
MANIPULATE_MODES: tuple[str, ...] = ("encoder", "unet", "both")

# token_kinds values
SPECIAL, TEXT, IMAGE = 0, 1, 2


def token_factors(
    segment_ids: torch.Tensor,
    token_kinds: torch.Tensor,
    segment_weights: Sequence[Sequence[float]],
    auto_balance: bool = True,
) -> torch.Tensor | None:
    """Per-token attention factors f_j, shape (B, T), or None when all are 1.

    Args:
        segment_ids: (B, T) index of each token's segment, -1 for special and padding tokens (factor 1).
        token_kinds: (B, T) SPECIAL, TEXT or IMAGE.
        segment_weights: the user's weight of every segment, one sequence per batch row.
        auto_balance: when a prompt's image tokens outnumber its text tokens, multiply the text tokens' factors
            by n_image / n_text, so that under uniform attention text and images draw equal total attention
            (the paper's automatic up-weighting of text in multimodal prompts).
    """
    batch, _ = segment_ids.shape
    width = max((len(w) for w in segment_weights), default=0) + 1
    table = torch.ones(batch, width, dtype=torch.float32)  # column 0: special tokens
    for row, weights in enumerate(segment_weights):
        table[row, 1 : len(weights) + 1] = torch.tensor([float(w) for w in weights], dtype=torch.float32)
    factors = table.gather(1, segment_ids.cpu() + 1)  # (B, T)

    if auto_balance:
        kinds = token_kinds.cpu()
        n_text = (kinds == TEXT).sum(dim=1, keepdim=True).float()
        n_image = (kinds == IMAGE).sum(dim=1, keepdim=True).float()
        balance = torch.where((n_image > n_text) & (n_text > 0), n_image / n_text.clamp(min=1), torch.ones_like(n_text))
        factors = torch.where(kinds == TEXT, factors * balance, factors)

    if torch.all(factors == 1.0):
        return None
    return factors


def key_bias(factors: torch.Tensor) -> torch.Tensor:
    """The additive pre-softmax bias log f_j (-inf where f_j = 0), shape (B, T)."""
    return torch.log(factors)


def place_bias(bias: torch.Tensor | None, manipulated: bool) -> torch.Tensor | None:
    """The bias one attention gets: all of `bias` where the manipulation mode acts, elsewhere only its masked
    columns. A weight of 0 removes its segment from every attention, whatever the mode: otherwise its own tokens
    (and, in the Qwen family, its reference latents) would still reach the picture through the unmanipulated one."""
    if bias is None or manipulated:
        return bias
    removed = torch.isneginf(bias)
    return torch.where(removed, bias, torch.zeros_like(bias)) if bool(removed.any()) else None


def masked_value(dtype: torch.dtype) -> float:
    """What stands for -inf in a mask of `dtype`: half its most negative finite value. exp() of it is exactly 0
    as -inf's is, but a row whose every key is masked stays finite (uniform, not NaN), and adding a score or a
    second mask cannot overflow in fp16."""
    return torch.finfo(dtype).min / 2


def as_mask(bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`bias` in `dtype`, -inf (and anything below) replaced by `masked_value(dtype)`."""
    return bias.to(dtype).clamp(min=masked_value(dtype))


def causal_bias_mask(bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A 4D float attention mask for a causal LM: masked above the diagonal plus the key bias.

    Returns shape (B, 1, T, T); row i (query) keeps keys j <= i, each shifted by bias[:, j].
    """
    length = bias.shape[-1]
    causal = torch.full((length, length), masked_value(dtype), device=bias.device, dtype=dtype).triu(1)
    return (causal[None, None] + as_mask(bias, dtype)[:, None, None, :]).clamp(min=masked_value(dtype))  # (B, 1, T, T)


class SegmentBiasProcessor:
    """A diffusers attention processor that adds a key bias to cross-attention, then defers to `inner`.

    Self-attention and calls without `key_bias` go to `inner` untouched, so results are bit-identical to the
    unwrapped U-Net unless a bias is passed (through `cross_attention_kwargs={"key_bias": bias}`).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        key_bias: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if key_bias is not None and encoder_hidden_states is not None:
            if key_bias.shape != encoder_hidden_states.shape[:2]:
                raise ValueError(
                    f"key_bias has shape {tuple(key_bias.shape)}, expected {tuple(encoder_hidden_states.shape[:2])}"
                )
            bias = as_mask(key_bias, hidden_states.dtype)[:, None, :]  # (B, 1, K): the same bias for every query
            attention_mask = bias if attention_mask is None else attention_mask + bias
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)


def wrap_processors(model: torch.nn.Module, wrapper: type) -> None:
    """Wrap every attention processor of a diffusers `model` in `wrapper(inner)` (idempotent)."""
    processors = model.attn_processors
    if all(isinstance(p, wrapper) for p in processors.values()):
        return
    model.set_attn_processor({name: p if isinstance(p, wrapper) else wrapper(p) for name, p in processors.items()})


def install_segment_bias(unet: torch.nn.Module) -> None:
    """Wrap every attention processor of `unet` in `SegmentBiasProcessor` (idempotent)."""
    wrap_processors(unet, SegmentBiasProcessor)
