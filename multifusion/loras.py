"""LoRAs: `--lora PATH_OR_ID[:SCALE]`, loaded through diffusers' `load_lora_weights` and weighted by `set_adapters`.

A LoRA may declare the settings it was made for (few-step "Lightning" LoRAs need 4 or 8 steps, no CFG and a
fixed timestep shift): in its safetensors metadata under `multifusion` (JSON: `steps`, `guidance`, `shift`), or,
for the Lightning family's files, by its name (`...Lightning-8steps...`: 8 steps, guidance 1, shift 3). Those
become the model's defaults while it is loaded. Every PNG records each LoRA's name, scale and AutoV3 hash (the
SHA-256 of the file's tensor data, the first 12 hex digits, as AUTOMATIC1111's `Lora hashes` write it).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PromptError

LIGHTNING = re.compile(r"lightning.*?(\d+)[-_ ]?steps?", re.IGNORECASE)
DECLARABLE = ("steps", "guidance", "shift")
HUB_FILE = re.compile(r"[\w.-]+/[\w.-]+/[\w./-]+\.safetensors")


@dataclass(frozen=True)
class Lora:
    """A LoRA file to load, its scale, and once resolved its hash and what it declares."""

    source: str  # a .safetensors file, a folder holding one, or a hub "org/repo/FILE.safetensors"
    scale: float = 1.0
    path: Path | None = None
    declared: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return (self.path or Path(self.source)).stem

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "scale": self.scale, "hash": autov3(self.path) if self.path else None}


def parse_lora(text: str) -> Lora:
    """`PATH_OR_ID[:SCALE]` as a `Lora` (scale 1 when none is given)."""
    source, scale = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            scale, source = float(tail), head
        except ValueError:
            pass
    if not source.strip():
        raise PromptError(f"--lora: no file in {text!r}; write PATH_OR_ID[:SCALE]")
    if not math.isfinite(scale) or abs(scale) > 10:
        raise PromptError(f"--lora {source}: the scale must be a number from -10 to 10, got {tail}")
    return Lora(source.strip(), scale)


def resolve(lora: Lora) -> Lora:
    """The LoRA with its local file (downloaded from the hub when it names one) and what it declares."""
    path = Path(lora.source)
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if len(files) != 1:
            raise PromptError(f"--lora {lora.source}: the folder holds {len(files)} .safetensors files; name one")
        path = files[0]
    elif not path.is_file():
        parts = lora.source.split("/")
        if path.is_absolute() or lora.source.startswith((".", "~")) or not HUB_FILE.fullmatch(lora.source):
            raise PromptError(f"--lora {lora.source}: no such file; a hub LoRA is named org/repo/FILE.safetensors")
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download("/".join(parts[:2]), "/".join(parts[2:])))
        except Exception as error:  # the hub's many errors (offline, missing, gated) all mean: not available
            raise PromptError(f"--lora {lora.source}: cannot download it ({type(error).__name__})") from None
    return Lora(lora.source, lora.scale, path, declared_defaults(path))


def declared_defaults(path: Path) -> dict[str, float]:
    """What the LoRA file declares (its metadata), else what its Lightning name implies, else nothing."""
    declared = _metadata(path).get("multifusion")
    if declared:
        try:
            values = json.loads(declared)
        except ValueError:
            raise PromptError(f"--lora {path.name}: its 'multifusion' metadata is not JSON") from None
        return {k: float(values[k]) for k in DECLARABLE if isinstance(values.get(k), (int, float))}
    match = LIGHTNING.search(path.name)
    return {"steps": float(match.group(1)), "guidance": 1.0, "shift": 3.0} if match else {}


def _metadata(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > 100_000_000:
            raise PromptError(f"--lora {path.name}: not a safetensors file")
        header = json.loads(f.read(length))
    return header.get("__metadata__", {}) if isinstance(header, dict) else {}


def autov3(path: Path) -> str:
    """AUTOMATIC1111's AutoV3 hash of a safetensors file: SHA-256 of everything after the header, 12 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + length)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def load_loras(pipe: Any, loras: list[Lora]) -> None:
    """Load every LoRA into `pipe` as its own adapter and weight them by their scales."""
    if not hasattr(pipe, "load_lora_weights"):
        raise PromptError(f"{type(pipe).__name__} does not take LoRAs")
    names = []
    for index, lora in enumerate(loras):
        name = f"lora_{index}"
        try:
            pipe.load_lora_weights(str(lora.path.parent), weight_name=lora.path.name, adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as error:
            raise PromptError(f"--lora {lora.source}: does not fit this model ({str(error).splitlines()[0][:200]})") from None
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[lora.scale for lora in loras])
