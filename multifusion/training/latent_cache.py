"""VAE latents of training images, encoded once and then read from disk: re-alignment trains only the U-Net's
cross-attention, so on every epoch after the first the frozen VAE encoder would compute the same latents again
(at 512 px on SD, the VAE encoder costs about as much as the U-Net's forward and backward pass).

One safetensors file per sample, named by a hash of its key, in a folder that also records what the latents depend
on (the VAE's config and a checksum of its weights, and the resolution); a folder made for another VAE or size is
refused, not silently mixed. A sample's latents are only the same every epoch when its image is: caching needs
the centre crop (`RealignConfig.cache_latents` checks). Processes write the files of their own samples, each
file atomically (written beside, then renamed), so N processes share one folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .latents import scaled_latents


def vae_fingerprint(vae, resolution: int) -> dict:
    """What the cached latents depend on: the VAE's config, a checksum of its weights, the image side."""
    checksum = hashlib.sha256()
    for name, tensor in sorted(vae.state_dict().items()):
        checksum.update(name.encode())
        checksum.update(tensor.detach().float().cpu().numpy().tobytes())
    return {"vae_config": json.loads(json.dumps(dict(vae.config), default=str)), "vae_weights": checksum.hexdigest()[:16],
            "resolution": resolution}  # fmt: skip


class LatentCache:
    def __init__(self, folder: str | Path, vae, resolution: int) -> None:
        self.folder, self.vae = Path(folder), vae
        self.folder.mkdir(parents=True, exist_ok=True)
        expected, record = vae_fingerprint(vae, resolution), self.folder / "cache.json"
        if record.exists():
            found = json.loads(record.read_text())
            if found != expected:
                raise ValueError(f"{self.folder} holds latents of another VAE or resolution ({found['resolution']} px, "
                                 f"weights {found['vae_weights']}): give the run a new latent cache folder")  # fmt: skip
        else:
            _write_atomically(record, lambda path: path.write_text(json.dumps(expected, indent=1)))
        self.hits = self.misses = 0

    def _path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha1(key.encode()).hexdigest()}.safetensors"

    @torch.no_grad()
    def latents(self, keys: list[str], pixels: torch.Tensor) -> torch.Tensor:
        """The scaled latents (B, C, h, w) of `pixels` (B, 3, H, W) in [-1, 1], sample i keyed `keys[i]`: read from
        the cache, or encoded (the latent distribution's mean) and stored."""
        paths = [self._path(key) for key in keys]
        found = {i: path for i, path in enumerate(paths) if path.exists()}
        missing = [i for i in range(len(keys)) if i not in found]
        out: list[torch.Tensor | None] = [None] * len(keys)
        if missing:
            for i, latent in zip(missing, scaled_latents(self.vae, pixels[missing])):
                out[i] = latent
                _write_atomically(paths[i], lambda path, t=latent: save_file({"latents": t.float().cpu().contiguous()}, path))
        for i, path in found.items():
            out[i] = load_file(path)["latents"].to(self.vae.device, self.vae.dtype)
        self.hits, self.misses = self.hits + len(found), self.misses + len(missing)
        return torch.stack(out)


def _write_atomically(path: Path, write) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    write(partial)
    os.replace(partial, path)
