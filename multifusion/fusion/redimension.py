"""Re-dimension a Stable Diffusion U-Net's cross-attention to read a language model of another width.

A real fusion pairs a U-Net whose `attn2` reads `cross_attention_dim`-wide states (768 for SD 1.x's CLIP, 1024 for
SD 2.x's OpenCLIP) with an LM of its own width (e.g. 1536 or 2048) and its own tokenizer. As in the paper, only
the key and value projections of every `attn2` change shape: they take the LM's width in and keep their inner
width out, so queries, heads and output projections stay as pretrained.

Initialisation: a linear map M from the LM's states to the old text encoder's is fitted on the same captions by
ridge least squares, then folded into the projections (k = W·old ≈ W·Mᵀ·new). The two tokenizers split a caption
differently, so positions do not correspond; what does is each caption as a whole, so the fit is on mean-pooled
states. That only constrains what a caption's tokens give on average, not each token: it is a start that puts the
keys and values in the right subspace and scale, which the re-alignment stage then trains `attn2` from.
"""

from __future__ import annotations

import torch
from torch import nn

from ..training.cross_attention import cross_attention_modules


@torch.no_grad()
def fit_state_map(new: torch.Tensor, old: torch.Tensor, ridge: float = 1e-3) -> tuple[torch.Tensor, float]:
    """(n, D_new), (n, D_old) -> M (D_new, D_old) with old ≈ new @ M, and the fit's R². Not centred: SD's key and
    value projections have no bias to carry an offset. `ridge` (relative to the mean eigenvalue) keeps M bounded
    when there are fewer captions than LM dimensions or the states are collinear."""
    new, old = new.double(), old.double()
    gram = new.T @ new
    gram += ridge * gram.diagonal().mean().clamp_min(1e-12) * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    mapping = torch.linalg.solve(gram, new.T @ old)
    r2 = 1 - (new @ mapping - old).pow(2).sum() / (old - old.mean(0)).pow(2).sum().clamp_min(1e-12)
    return mapping.float(), float(r2)


@torch.no_grad()
def redimension_cross_attention(unet, width: int, mapping: torch.Tensor | None = None) -> None:
    """Make every `attn2` of `unet` read `width`-wide states: new `to_k`/`to_v` of shape (inner, width), set to
    W @ mappingᵀ when a `fit_state_map` result is given (else a random start of the old weights' scale), and
    `cross_attention_dim` in the config, so that the saved U-Net reloads with the new shapes."""
    if (getattr(unet, "encoder_hid_proj", None) is not None or unet.config.get("addition_embed_type") == "text_time"
            or unet.config.get("cross_attention_norm") or unet.config.get("only_cross_attention")):  # fmt: skip
        raise NotImplementedError("U-Nets that project, pool or normalise their text states (SDXL, IP-Adapter) are "
                                  "not supported; SD 1.x and 2.x are")  # fmt: skip
    old_width = unet.config.cross_attention_dim
    if mapping is not None and tuple(mapping.shape) != (width, old_width):
        raise ValueError(f"the state map is {tuple(mapping.shape)}, expected ({width}, {old_width})")
    for attention in cross_attention_modules(unet):
        for name in ("to_k", "to_v"):
            old = getattr(attention, name)
            new = nn.Linear(width, old.out_features, bias=old.bias is not None, device=old.weight.device, dtype=old.weight.dtype)
            if mapping is not None:
                new.weight.copy_(old.weight @ mapping.T.to(old.weight))
            else:
                nn.init.normal_(new.weight, std=float(old.weight.std()) * (old_width / width) ** 0.5)
            if old.bias is not None:
                new.bias.copy_(old.bias)
            setattr(attention, name, new)
        attention.cross_attention_dim = width
    unet.register_to_config(cross_attention_dim=width)
