"""The losses the stages of both recipes share: the denoising loss of a U-Net (min-SNR weighted, with an optional
teacher), and the contrastive terms that make prompts encode alike (token matching, symmetric InfoNCE)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def diffusion_loss(unet, scheduler, latents: torch.Tensor, conditioning: torch.Tensor, snr_gamma: float = 5.0,
                   teacher: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   teacher_weights: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                   timesteps: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Denoising loss at random timesteps (epsilon or v target, by the scheduler's `prediction_type`), weighted by
    min-SNR-gamma (Hang et al. 2023) to converge faster.

    With a `teacher(noisy, t)`, each sample's prediction is also pulled towards the teacher's on the same noisy
    latents, by `teacher_weights` (one per sample): the teacher's prediction is a low-variance target that keeps
    what it already draws right while the student learns new inputs. `noise` and `timesteps` may be given (drawn
    per sample, so that a sample trains alike in any batch or process); else they are drawn here.

    For v-prediction the clamp is on SNR + 1 (the v loss's own weight on the clean-image error): clamping SNR, as
    for epsilon, would give the noisiest timesteps, where the layout and colours are read from the prompt, a weight
    near zero, and exactly zero at t = T under a zero-terminal-SNR schedule."""
    noise = torch.randn_like(latents) if noise is None else noise
    t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device) if timesteps is None else timesteps
    noisy = scheduler.add_noise(latents, noise, t)
    prediction = unet(noisy, t, conditioning).sample
    alphas = scheduler.alphas_cumprod.to(latents.device)[t]
    snr = alphas / (1 - alphas)
    if scheduler.config.prediction_type == "v_prediction":
        target, weight = scheduler.get_velocity(latents, noise, t), torch.clamp(snr + 1, max=snr_gamma) / (snr + 1)
    else:
        target, weight = noise, torch.clamp(snr, max=snr_gamma) / snr
    loss = ((prediction - target) ** 2).mean(dim=(1, 2, 3))
    if teacher is not None:
        with torch.no_grad():
            guide = teacher(noisy, t)
        loss = loss + teacher_weights.to(loss) * ((prediction - guide) ** 2).mean(dim=(1, 2, 3))
    return (weight * loss).mean()


def token_matching(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, T, D) x (B, T, D) -> (B, B) similarity of every prompt in `a` to every prompt in `b`: each position's
    best cosine match in the other prompt, averaged both ways. The prefix token (the same in every prompt) is left
    out; padding positions stay in, as they summarise the prompt and the U-Net attends to them too."""
    a, b = F.normalize(a[:, 1:], dim=-1), F.normalize(b[:, 1:], dim=-1)
    cosines = torch.einsum("itd,jsd->ijts", a, b)
    return (cosines.amax(dim=3).mean(dim=2) + cosines.amax(dim=2).mean(dim=2)) / 2


def info_nce(similarity: torch.Tensor, temperature: float, negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE on a (B, B) similarity: row i should match column i and no other. `negatives` (B, N)
    are further candidates each row must rank below its match (hard negatives: near misses of its scene)."""
    logits = similarity / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    rows = logits if negatives is None else torch.cat([logits, negatives / temperature], dim=1)
    return (F.cross_entropy(rows, targets) + F.cross_entropy(logits.T, targets)) / 2
