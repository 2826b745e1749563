"""The words of the shapes world: every word a caption can hold, in any language, frame and grammatical form.

A model trained on the shapes world knows these words and no others; the studio tells a visitor which words of
their prompt fall outside them (`vocabulary.txt` in a model directory, written by `write_vocabulary`).
"""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path

from .captions import COLOUR_FORMS, LANGUAGES, frames, noun_phrase, terse_phrase
from .frames import terse_forms
from .world import COLOURS, SHAPES, SIZES, ShapeObject

WORD = re.compile(r"\w+")
FILE_NAME = "vocabulary.txt"


def words_of(text: str) -> list[str]:
    """The words of `text`, lower case, in order (letters and digits; punctuation and apostrophes split)."""
    return WORD.findall(text.lower())


def grammar_spellings() -> frozenset[str]:
    """Every word of every frame and terse form (training and held-out) and every phrase of every object, spelt
    as the captions spell them (German nouns capitalised, the rest lower case)."""
    words: set[str] = set()
    for lang in LANGUAGES:
        for split, n_objects in product(("train", "held_out"), (1, 2)):
            for template in frames(n_objects, lang, split) + terse_forms(n_objects, lang, split):
                words.update(WORD.findall(re.sub(r"\{[^}]*\}", " ", template)))
        for shape, colour, size in product(SHAPES, COLOURS, SIZES):
            obj = ShapeObject(shape, colour, size)
            for mention_size, case, form, one in product((False, True), ("nom", "acc", "dat"), COLOUR_FORMS, (False, True)):
                words.update(WORD.findall(noun_phrase(obj, lang, mention_size, case, form, one)))
            for mention_size, tag_order, case in product((False, True), (False, True), ("nom", "dat")):
                words.update(WORD.findall(terse_phrase(obj, lang, mention_size, tag_order, case)))
    return frozenset(words)


def shapes_vocabulary() -> frozenset[str]:
    """The world's words in lower case (what the studio checks a prompt against)."""
    return frozenset(word.lower() for word in grammar_spellings())


def write_vocabulary(model_dir: str | Path) -> Path:
    """Declare the shapes vocabulary in a saved pipeline's directory, one word per line."""
    path = Path(model_dir) / FILE_NAME
    path.write_text("\n".join(sorted(shapes_vocabulary())) + "\n", encoding="utf-8")
    return path
