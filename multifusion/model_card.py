"""What a model directory says about itself to the studio: what it draws, its languages, the words it knows.

Read from the model card's YAML front matter (`README.md`, as on the Hugging Face Hub) under a `multifusion` key,
and from `vocabulary.txt` (one word per line) where the model declares a closed vocabulary:

    ---
    multifusion:
      draws: one or two flat shapes ...
      languages: [en, de, fr, it, es]
      native_size: 64         # optional: what the model's family cannot tell from its configs
      default_steps: 4        #   (native_size, default_steps, default_guidance, max_images, reference_pixels)
    ---

A card that is missing or unreadable declares nothing; it never stops a model from loading.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .shapes.vocabulary import FILE_NAME, words_of

LOG = logging.getLogger(__name__)


SETTINGS = ("native_size", "default_steps", "default_guidance", "max_images", "reference_pixels")  # numbers a card may set


@dataclass(frozen=True)
class ModelCard:
    draws: str | None = None
    languages: tuple[str, ...] = ()
    vocabulary: frozenset[str] | None = None
    settings: dict[str, float] = field(default_factory=dict)  # of SETTINGS, those the card declares

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelCard:
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            return cls()
        declared = _front_matter(model_dir / "README.md").get("multifusion") or {}
        if not isinstance(declared, dict):
            declared = {}
        vocabulary_file = model_dir / FILE_NAME
        vocabulary = None
        if vocabulary_file.is_file():
            vocabulary = frozenset(line.strip().lower() for line in vocabulary_file.read_text(encoding="utf-8").splitlines() if line.strip())
        draws, languages = declared.get("draws"), declared.get("languages") or ()
        settings = {key: declared[key] for key in SETTINGS if _positive_number(declared.get(key))}
        return cls(str(draws) if draws else None, tuple(str(lang) for lang in languages), vocabulary, settings)

    def unknown_words(self, texts: Iterable[str], limit: int = 8) -> list[str]:
        """Words of `texts` outside the declared vocabulary (none when no vocabulary is declared), first seen first."""
        if self.vocabulary is None:
            return []
        unknown: dict[str, None] = {}
        for text in texts:
            for word in words_of(text):
                if word not in self.vocabulary and not word.isdigit():
                    unknown[word] = None
        return list(unknown)[:limit]


def _positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")


def model_label(model: str | Path) -> str:
    """How outputs and pages name a model: a hub id as it is; a folder by its name and a short hash of its weights
    (`multifusion-tiny@1a2b3c4d`), never by its path on the server, which can hold a user's name."""
    folder = Path(model)
    if not folder.is_dir():
        return str(model)
    digest = hashlib.sha256()
    for weights in sorted(folder.rglob("*.safetensors")):
        digest.update(str(weights.relative_to(folder)).encode())
        digest.update(weights.stat().st_size.to_bytes(8, "little"))
        with open(weights, "rb") as f:  # the header: every tensor's name, shape and offsets (the data stays unread)
            head = f.read(8)
            digest.update(head + f.read(min(int.from_bytes(head, "little"), 1 << 24)) if len(head) == 8 else head)
    return f"{folder.resolve().name}@{digest.hexdigest()[:8]}"


def _front_matter(readme: Path) -> dict:
    if not readme.is_file():
        return {}
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        return {}
    try:
        data = yaml.safe_load(text[4 : text.index("\n---", 4)])
    except yaml.YAMLError as error:
        LOG.warning("ignoring the unreadable front matter of %s: %s", readme, error)
        return {}
    return data if isinstance(data, dict) else {}
