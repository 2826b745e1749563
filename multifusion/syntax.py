"""The prompt string syntax for the CLI and power users (close to the AUTOMATIC1111 habit).

    a photo of <cat> in the style of (van gogh:1.3), (<dog>:0.5)

- plain text is a text segment of weight 1;
- `(text:1.3)` is a text segment of weight 1.3 (the weight follows the last colon);
- `<name>` places the image given as `name`; `(<name>:0.7)` weights it;
- `\\(`, `\\)`, `\\<`, `\\>` and `\\\\` are literal characters; any other backslash is kept as it is.

`parse_prompt(format_prompt(p)) == p` for every valid prompt whose images have names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from PIL import Image

from .errors import PromptError
from .prompt import ImageSegment, MultimodalPrompt, Segment, TextSegment

_SPECIAL = "\\()<>"
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_WEIGHT = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*")


def parse_prompt(text: str, images: Mapping[str, Image.Image] | None = None) -> MultimodalPrompt:
    """Parse the string syntax into a prompt; `images` maps the names used in `<name>` to images.

    Raises `PromptError` with the position of the first mistake. The result is not yet validated against
    limits: call `.validate()`.
    """
    if not isinstance(text, str):
        raise PromptError(f"expected the prompt as a string, got {type(text).__name__}")
    images = dict(images or {})
    segments: list[Segment] = []
    chars: list[str] = []
    i = 0

    def flush() -> None:
        if chars:
            segments.append(TextSegment("".join(chars)))
            chars.clear()

    while i < len(text):
        c = text[i]
        if c == "\\":
            literal, i = _escape(text, i)
            chars.append(literal)
        elif c == "(":
            flush()
            segment, i = _parse_group(text, i, images)
            segments.append(segment)
        elif c == "<":
            flush()
            name, i = _parse_tag(text, i)
            segments.append(_image(name, 1.0, images, i))
        elif c in ")>":
            raise PromptError(f"unexpected {c!r} at position {i + 1}; write \\{c} for a literal one")
        else:
            chars.append(c)
            i += 1
    flush()
    return MultimodalPrompt(tuple(segments))


def format_prompt(prompt: MultimodalPrompt) -> tuple[str, dict[str, Image.Image]]:
    """Write a prompt in the string syntax; returns the string and the images by the names it uses.

    Unnamed images (and names the syntax cannot hold) get names like `image1`.
    """
    parts: list[str] = []
    images: dict[str, Image.Image] = {}
    previous_bare_text = False
    for index, segment in enumerate(prompt.segments):
        weight = float(segment.weight)
        if isinstance(segment, TextSegment):
            body = "".join("\\" + c if c in _SPECIAL else c for c in segment.text)
            # A neutral fragment right after another bare one would merge with it, so it gets explicit brackets.
            bare = weight == 1.0 and not previous_bare_text
            parts.append(body if bare else f"({body}:{weight!r})")
            previous_bare_text = bare
        else:
            name = segment.name if segment.name and _NAME.fullmatch(segment.name) else f"image{index + 1}"
            if name in images and images[name] is not segment.image:
                name = f"{name}.{index + 1}"
            images[name] = segment.image
            parts.append(f"<{name}>" if weight == 1.0 else f"(<{name}>:{weight!r})")
            previous_bare_text = False
    return "".join(parts), images


def _escape(text: str, i: int) -> tuple[str, int]:
    """A backslash at `i`: an escaped special character, or a literal backslash."""
    if i + 1 < len(text) and text[i + 1] in _SPECIAL:
        return text[i + 1], i + 2
    return "\\", i + 1


def _parse_tag(text: str, i: int) -> tuple[str, int]:
    """`<name>` starting at `i`; returns the name and the index after `>`."""
    end = text.find(">", i)
    name = text[i + 1 : end] if end >= 0 else ""
    if end < 0 or not _NAME.fullmatch(name):
        raise PromptError(
            f"'<' at position {i + 1} must open an image tag like <name> (letters, digits, _ . -); "
            "write \\< for a literal one"
        )
    return name, end + 1


def _parse_group(text: str, i: int, images: dict[str, Image.Image]) -> tuple[Segment, int]:
    """`(text:w)` or `(<name>:w)` starting at `i`; returns the segment and the index after `)`."""
    start = i
    j = i + 1
    while j < len(text) and text[j] != ")":
        if text[j] == "\\":
            j += 2 if j + 1 < len(text) and text[j + 1] in _SPECIAL else 1
        elif text[j] == "(":
            raise PromptError(f"nested '(' at position {j + 1} is not supported; write \\( for a literal one")
        else:
            j += 1
    if j >= len(text):
        raise PromptError(f"'(' at position {start + 1} is never closed; write \\( for a literal one")
    body, colon, weight_text = text[start + 1 : j].rpartition(":")
    match = _WEIGHT.fullmatch(weight_text)
    if not colon or match is None:
        raise PromptError(
            f"'(' at position {start + 1} needs a weight, like (text:1.3) or (<name>:0.7); "
            "write \\( for a literal bracket"
        )
    weight = float(match.group(1))
    if body.startswith("<") and body.endswith(">") and _NAME.fullmatch(body[1:-1]):
        return _image(body[1:-1], weight, images, start), j + 1
    literal: list[str] = []
    k = 0
    while k < len(body):
        if body[k] == "\\":
            c, k = _escape(body, k)
            literal.append(c)
        elif body[k] in "<>":
            raise PromptError(f"unexpected {body[k]!r} at position {start + 2 + k}; write \\{body[k]} for a literal one")
        else:
            literal.append(body[k])
            k += 1
    if not literal:
        raise PromptError(f"the bracket at position {start + 1} holds no text")
    return TextSegment("".join(literal), weight), j + 1


def _image(name: str, weight: float, images: dict[str, Image.Image], position: int) -> ImageSegment:
    if name not in images:
        given = ", ".join(sorted(images)) or "none"
        raise PromptError(f"image <{name}> near position {position} was not given (images given: {given})")
    return ImageSegment(images[name], weight, name)
