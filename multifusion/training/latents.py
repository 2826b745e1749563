"""From images to what a U-Net trains on: pixel tensors in the VAE's range, and the VAE's scaled latents of them."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """PIL images -> (N, 3, H, W) in [-1, 1], the VAE's range."""
    array = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


@torch.no_grad()
def scaled_latents(vae, pixels: torch.Tensor) -> torch.Tensor:
    """What the U-Net trains on: the VAE posterior's mean of `pixels` (B, 3, H, W) in [-1, 1], scaled."""
    return vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor
