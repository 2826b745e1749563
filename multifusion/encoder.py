"""MultiFusionEncoder: a causal language model that reads interleaved text and images (design §4).

Images enter MAGMA-style: a vision encoder's feature grid is pooled to k x k cells and mapped into the LM's
embedding space by the image prefix (Linear -> LayerNorm), giving `image_tokens` = k² tokens per image. Optional
bottleneck adapters (Houlsby et al.) sit after every MLP block of the LM. The output is one hidden state per
token, the conditioning the U-Net's re-aligned cross-attention reads.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from PIL import Image
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PreTrainedModel

from .attention import causal_bias_mask
from .content_crop import crop_to_content


def mean_pool(hidden: torch.Tensor) -> torch.Tensor:
    """A prompt's encoding as one vector, (B, T, D) -> (B, D): the mean of every position after the prefix token.

    That covers the content tokens and the padding positions, which attend to the whole prompt and so summarise
    it. The evaluation compares translations by the cosine of these vectors (the paper's measure).
    """
    return hidden[:, 1:].mean(dim=1)


class BottleneckAdapter(nn.Module):
    """x + up(act(down(x))), with `up` zero-initialised so a new adapter is the identity."""

    def __init__(self, dim: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x)))


class ImagePrefix(nn.Module):
    """Vision features (N, S, Dv) -> (N, k*k, D) LM input embeddings: grid pooling, Linear, LayerNorm."""

    def __init__(self, vision_dim: int, lm_dim: int, image_tokens: int) -> None:
        super().__init__()
        self.side = math.isqrt(image_tokens)
        self.proj = nn.Linear(vision_dim, lm_dim)
        self.norm = nn.LayerNorm(lm_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, seq, dim = features.shape
        grid = math.isqrt(seq)
        patches = features[:, seq - grid * grid :]  # drop leading CLS/register tokens, keep the patch grid
        patches = patches.transpose(1, 2).reshape(n, dim, grid, grid)  # (N, Dv, g, g)
        pooled = F.adaptive_avg_pool2d(patches, self.side).flatten(2).transpose(1, 2)  # (N, k*k, Dv)
        return self.norm(self.proj(pooled))  # (N, k*k, D)


class MultiFusionEncoder(ModelMixin, ConfigMixin):
    """A causal LM with an image prefix and optional adapters; see the module docstring.

    Args:
        lm_config: the language model's transformers config as a dict (`config.to_dict()`).
        vision_config: the vision encoder's transformers config as a dict.
        image_tokens: tokens per image; a perfect square k² (the feature grid is pooled to k x k).
        adapter_dim: bottleneck size of the adapters after each LM MLP; 0 for none.
        max_length: every prompt is laid out to exactly this many tokens.
        hidden_layer: which hidden state is the output; -1 is the LM's final (normalised) hidden state.
        crop_to_content: crop image prompts to their content before the vision encoder (`content_crop`), for
            models trained on drawings of single objects; leave it off for photographs.
    """

    config_name = "config.json"
    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        lm_config: dict[str, Any],
        vision_config: dict[str, Any],
        image_tokens: int = 16,
        adapter_dim: int = 0,
        max_length: int = 77,
        hidden_layer: int = -1,
        crop_to_content: bool = False,
    ) -> None:
        super().__init__()
        if math.isqrt(image_tokens) ** 2 != image_tokens:
            raise ValueError(f"image_tokens must be a perfect square (k*k), got {image_tokens}")
        # LMs that tie their output layer to their word embeddings (Gemma, Qwen2.5, Llama 3.2 1B) get their own copy
        # of it: safetensors cannot save two names for one tensor, and the LM stays frozen, so nothing drifts apart
        self.lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(**{**lm_config, "tie_word_embeddings": False}))
        self.vision = AutoModel.from_config(AutoConfig.for_model(**vision_config))
        lm_dim = self.lm.config.hidden_size
        self.image_prefix = ImagePrefix(self.vision.config.hidden_size, lm_dim, image_tokens)
        mlps = [m for name, m in self.lm.named_modules() if name.endswith(".mlp")]
        self.adapters = nn.ModuleList(BottleneckAdapter(lm_dim, adapter_dim) for _ in mlps) if adapter_dim else None
        if self.adapters is not None:
            for mlp, adapter in zip(mlps, self.adapters):
                mlp.register_forward_hook(lambda _module, _args, out, adapter=adapter: adapter(out))
        self.match_prefix_scale()

    @classmethod
    def from_parts(cls, lm: PreTrainedModel, vision: PreTrainedModel, **config: Any) -> MultiFusionEncoder:
        """Fuse pretrained models, e.g. `from_parts(AutoModelForCausalLM.from_pretrained("org/lm"), ...)`."""
        encoder = cls(lm_config=lm.config.to_dict(), vision_config=vision.config.to_dict(), **config)
        encoder.lm.load_state_dict(lm.state_dict())
        encoder.vision.load_state_dict(vision.state_dict())
        encoder.match_prefix_scale()
        return encoder

    @torch.no_grad()
    def match_prefix_scale(self) -> None:
        """Start the image prefix at the scale of the LM's word embeddings (its LayerNorm gain = their RMS). A unit
        LayerNorm output is ~50x larger than a typical LM's word embeddings, and a frozen LM does not learn to read
        such outliers (measured: with it, the MAGMA phase taught the LM nothing from the image)."""
        rms = self.lm.get_input_embeddings().weight.pow(2).mean().sqrt()
        self.image_prefix.norm.weight.fill_(rms)  # a 0-d tensor: also works on the meta device of from_pretrained

    @property
    def hidden_size(self) -> int:
        return self.lm.config.hidden_size

    def prepare_images(self, images: list[Image.Image]) -> list[Image.Image]:
        """The images as the vision processor should receive them (cropped to content if the config says so)."""
        return [crop_to_content(im) for im in images] if self.config.crop_to_content else list(images)

    def embed_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) pixels -> (N, image_tokens, D) prefix embeddings."""
        features = self.vision(pixel_values=pixel_values).last_hidden_state  # (N, S, Dv)
        return self.image_prefix(features)

    def forward(
        self,
        input_ids: torch.Tensor,
        image_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        key_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode a laid-out batch (see `processor.layout_prompts`).

        Args:
            input_ids: (B, T) token ids; positions in `image_mask` are replaced by image prefix embeddings.
            image_mask: (B, T) bool, True at image tokens (N * image_tokens of them, in image order).
            pixel_values: (N, 3, H, W) the images.
            key_bias: (B, T) attention manipulation bias (`attention.key_bias`), or None for none.

        Returns:
            (B, T, D) hidden states.
        """
        embeds = self.lm.get_input_embeddings()(input_ids)  # (B, T, D)
        if pixel_values is not None:
            prefix = self.embed_images(pixel_values.to(self.device, self.vision.dtype))  # (N, k*k, D)
            embeds = embeds.masked_scatter(image_mask[..., None].to(embeds.device), prefix.to(embeds.dtype))
        mask = None if key_bias is None else causal_bias_mask(key_bias.to(embeds.device), embeds.dtype)
        wants_layer = self.config.hidden_layer != -1
        out = self.lm.base_model(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=wants_layer)
        return out.hidden_states[self.config.hidden_layer] if wants_layer else out.last_hidden_state
