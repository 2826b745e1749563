"""What a model directory says about itself to the studio: what it draws, its languages, the words it knows.

Read from the model card's YAML front matter (`README.md`, as on the Hugging Face Hub) under a `multifusion` key,
and from `vocabulary.txt` (one word per line) where the model declares a closed vocabulary:

    ---
    multifusion:
      draws: one or two flat shapes ...
      languages: [en, de, fr, it, es]
    ---

A card that is missing or unreadable declares nothing; it never stops a model from loading.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from .shapes.vocabulary import FILE_NAME, words_of

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCard:
    draws: str | None = None
    languages: tuple[str, ...] = ()
    vocabulary: frozenset[str] | None = None

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
        return cls(str(draws) if draws else None, tuple(str(lang) for lang in languages), vocabulary)

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
