"""The prompt string syntax: AUTOMATIC1111's emphasis grammar, with images as `<name>`.

    a photo of <cat> in the style of (van gogh:1.3), [blurry], ((<dog>))

- `(text)` multiplies the weight of what it holds by 1.1, `[text]` divides it by 1.1, `(text:w)` multiplies it by
  w; brackets nest and their factors multiply (`((a))` is 1.21);
- a bracket left open is closed at the end, and a closing one with nothing to close is text, as AUTOMATIC1111
  reads them;
- `\\(` `\\)` `\\[` `\\]` `\\<` `\\>` `\\\\` are literal characters, `\\BREAK` the literal word; any other backslash
  is kept as it is;
- `BREAK` (the word, in capitals) ends a segment: the text on either side becomes separate segments;
- `<name>` places the image given as `name`, inside brackets too (`(<cat>:0.7)`, `((<cat>))`);
- neighbouring text of the same weight is one segment (`(unnecessary)(parens)` is "unnecessaryparens" at 1.1).

What this model cannot honour is refused by name rather than misread: prompt editing `[from:to:when]`,
alternation `[a|b]` and `<lora:...>` tags (LoRAs are loaded with the model: `--lora`).

`parse_prompt(format_prompt(p)) == p` for every valid prompt whose images have names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image

from .errors import PromptError
from .prompt import ImageSegment, MultimodalPrompt, Segment, TextSegment

ROUND, SQUARE = 1.1, 1 / 1.1  # AUTOMATIC1111's emphasis factors
_ESCAPABLE = "\\()[]<>"
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_TOKENS = re.compile(
    r"""
      (?P<escape>\\BREAK\b|\\[\\()\[\]<>])
    | (?P<tag><[^<>]*>)
    | (?P<weight>:\s*(?P<w>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*\))
    | (?P<break>\s*\bBREAK\b\s*)
    | (?P<open>[(\[])
    | (?P<close>[)\]])
    | (?P<text>(?:[^\\()\[\]<>:B\s]|\s(?!\s*\bBREAK\b))+|B|:|\\|<|>)  # spaces before BREAK are BREAK's
    """,
    re.VERBOSE,
)


@dataclass
class _Piece:
    kind: str  # "text", "image" or "break"
    value: str
    weight: float = 1.0


def parse_prompt(text: str, images: Mapping[str, Image.Image] | None = None, *, image_tags: bool = True) -> MultimodalPrompt:
    """Parse the string syntax into a prompt; `images` maps the names used in `<name>` to images. With
    `image_tags=False` (a text card of the composer) `<` and `>` are plain characters.

    Raises `PromptError` with the position of the mistake. The result is not yet validated against limits: call
    `.validate()`.
    """
    if not isinstance(text, str):
        raise PromptError(f"expected the prompt as a string, got {type(text).__name__}")
    images = dict(images or {})
    pieces: list[_Piece] = []
    round_open: list[int] = []  # where each open bracket's pieces start, one stack per kind as AUTOMATIC1111 keeps them
    square_open: list[int] = []

    def emphasise(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            piece.weight *= factor

    for match in _TOKENS.finditer(text):
        kind, token, at = match.lastgroup, match.group(0), match.start()
        if kind == "escape":
            pieces.append(_Piece("text", token[1:]))
        elif kind == "tag" and image_tags and _is_tag(token, at):
            pieces.append(_Piece("image", token[1:-1]))
        elif kind == "break":
            pieces.append(_Piece("break", ""))
        elif token == "(":
            round_open.append(len(pieces))
        elif token == "[":
            _refuse_editing(text, at)
            square_open.append(len(pieces))
        elif kind == "weight" and round_open:
            emphasise(round_open.pop(), float(match.group("w")))
        elif token == ")" and round_open:
            emphasise(round_open.pop(), ROUND)
        elif token == "]" and square_open:
            emphasise(square_open.pop(), SQUARE)
        else:  # text, and brackets or weights with nothing to close: plain characters, as AUTOMATIC1111 reads them
            pieces.append(_Piece("text", token))
    for start in round_open:  # left open: closed at the end
        emphasise(start, ROUND)
    for start in square_open:
        emphasise(start, SQUARE)
    return MultimodalPrompt(tuple(_segments(pieces, images)))


def _segments(pieces: list[_Piece], images: dict[str, Image.Image]) -> list[Segment]:
    """Text pieces of one weight between images and BREAKs joined into one segment each; images resolved."""
    segments: list[Segment] = []
    run: list[_Piece] = []

    def flush() -> None:
        if run and "".join(p.value for p in run):
            segments.append(TextSegment("".join(p.value for p in run), run[0].weight))
        run.clear()

    for piece in pieces:
        if piece.kind == "text":
            if run and run[-1].weight != piece.weight:
                flush()
            run.append(piece)
            continue
        flush()
        if piece.kind == "image":
            segments.append(_image(piece.value, piece.weight, images))
    flush()
    return segments


def _is_tag(tag: str, at: int) -> bool:
    """Whether `<...>` at `at` places an image; LoRA tags are refused by name, anything else is plain text."""
    name = tag[1:-1]
    if name.lower().startswith(("lora:", "lyco:", "hypernet:")):
        raise PromptError(f"{tag[:40]} at position {at + 1}: LoRA tags in the prompt are not supported; load a LoRA with "
                          "the model (--lora PATH:SCALE, MULTIFUSION_LORAS), where it applies to every prompt")  # fmt: skip
    return bool(_NAME.fullmatch(name))


def _refuse_editing(text: str, at: int) -> None:
    """`[` at `at`: refuse AUTOMATIC1111's prompt editing `[a:b:when]` and alternation `[a|b]`, which change the
    prompt between steps, a thing this model does not do. Plain `[text]` is emphasis."""
    depth, round_depth, i = 0, 0, at
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        depth += c == "["
        depth -= c == "]"
        round_depth += (c == "(") - (c == ")") if depth == 1 else 0
        if depth == 0:
            return
        if depth == 1 and round_depth <= 0 and c in ":|":
            what = "prompt editing [from:to:when]" if c == ":" else "alternation [a|b]"
            raise PromptError(f"'[' at position {at + 1} starts {what}, which this model does not support (it changes the "
                              "prompt between steps); use [text] to weaken, or write \\[ for a literal bracket")  # fmt: skip
        i += 1


def format_prompt(prompt: MultimodalPrompt) -> tuple[str, dict[str, Image.Image]]:
    """Write a prompt in its canonical string form; returns the string and the images by the names it uses.

    Weighted text is `(text:w)` (neutral text bare), weighted images `(<name>:w)`; two neighbouring text segments
    of the same weight are kept apart by `BREAK`, both in brackets so that no space is lost. Unnamed images (and
    names the syntax cannot hold) get names like `image1`.
    """
    parts: list[str] = []
    images: dict[str, Image.Image] = {}
    segments = prompt.segments

    def twin(i: int, j: int) -> bool:  # text segments i and j would merge when read back
        return (0 <= j < len(segments) and isinstance(segments[i], TextSegment) and isinstance(segments[j], TextSegment)
                and float(segments[i].weight) == float(segments[j].weight))  # fmt: skip

    for index, segment in enumerate(segments):
        weight = float(segment.weight)
        if isinstance(segment, TextSegment):
            body = escape_text(segment.text)
            if twin(index, index - 1):
                parts.append("BREAK")
            bracketed = weight != 1.0 or twin(index, index - 1) or twin(index, index + 1)
            parts.append(f"({body}:{weight!r})" if bracketed else body)
        else:
            name = segment.name if segment.name and _NAME.fullmatch(segment.name) else f"image{index + 1}"
            if name in images and images[name] is not segment.image:
                name = f"{name}.{index + 1}"
            images[name] = segment.image
            parts.append(f"<{name}>" if weight == 1.0 else f"(<{name}>:{weight!r})")
    return "".join(parts), images


def read_emphasis(prompt: MultimodalPrompt) -> MultimodalPrompt:
    """`prompt` with the emphasis its text segments are written in read: each becomes the segments its text says
    (`<`, `>` plain), weighted by its own weight times theirs, in its language. A composer card is such a segment."""
    segments: list[Segment] = []
    for segment in prompt.segments:
        if not isinstance(segment, TextSegment):
            segments.append(segment)
            continue
        for part in parse_prompt(segment.text, image_tags=False).segments:
            segments.append(TextSegment(part.text, float(segment.weight) * part.weight, segment.lang))
    return MultimodalPrompt(tuple(segments))


def escape_text(text: str) -> str:
    """`text` written so that the syntax reads it back as exactly this text at weight 1."""
    return re.sub(r"\bBREAK\b", r"\\BREAK", "".join("\\" + c if c in _ESCAPABLE else c for c in text))


def _image(name: str, weight: float, images: dict[str, Image.Image]) -> ImageSegment:
    if name not in images:
        given = ", ".join(sorted(images)) or "none"
        raise PromptError(f"image <{name}> was not given (images given: {given})")
    return ImageSegment(images[name], weight, name)
