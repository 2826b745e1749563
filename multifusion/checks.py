"""Checks shared by every entry point (Python, CLI, app, API), so that one input gets one answer everywhere.

- Text must be valid Unicode: a lone surrogate (U+D800..U+DFFF) cannot be encoded, tokenized or saved.
- A text is *blank* when nothing visible is left after removing whitespace, control and format characters
  (zero-width spaces and joiners, the BOM, NUL): such a fragment says nothing to the model.
- Numbers are finite and in range; an integer too large for a float is out of range, not a crash.
- Values echoed in messages are shortened, so an error never repeats a megabyte back.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from .errors import PromptError

_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}


def shorten(value: Any, limit: int = 40) -> str:
    """`repr(value)` cut to about `limit` characters."""
    text = repr(value) if not isinstance(value, str) else repr(value.encode("utf-8", "backslashreplace").decode())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_unicode(text: str, what: str) -> None:
    """Refuse lone surrogates, naming the character's position."""
    for index, char in enumerate(text):
        if 0xD800 <= ord(char) <= 0xDFFF:
            raise PromptError(f"{what} is not valid Unicode (a lone surrogate at character {index + 1})")


def is_blank(text: str) -> bool:
    """True when `text` has no visible character."""
    return all(char.isspace() or unicodedata.category(char) in _INVISIBLE for char in text)


def finite_number(value: Any, what: str, low: float, high: float) -> float:
    """`value` as a float in [low, high]; booleans, strings, NaN, infinities and huge integers are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PromptError(f"{what} must be a number, got {shorten(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float is out of range
        number = math.inf
    if isinstance(value, float) and not math.isfinite(value):
        raise PromptError(f"{what} must be a finite number, got {shorten(value)}")
    if not low <= number <= high:
        raise PromptError(f"{what} {shorten(value)} is outside [{low:g}, {high:g}]")
    return number
