"""The multimodal prompt: an ordered tuple of text and image segments, each with a weight.

A weight is the factor by which attention to the segment's tokens is multiplied (design §4): 1 is neutral,
0 removes the segment, 2 doubles its share of attention before renormalisation. Limits are checked by
`MultimodalPrompt.validate` before any model runs; every violation is a `PromptError` naming the segment.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Union

from PIL import Image

from .checks import check_unicode, finite_number, is_blank, shorten
from .errors import PromptError
from .images import image_digest, load_image, to_data_url

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "it", "es")


@dataclass(frozen=True)
class PromptLimits:
    """Bounds checked before any model runs. Token limits depend on the tokenizer and are checked by the processor."""

    max_segments: int = 32
    max_images: int = 8
    max_text_chars: int = 2000
    max_image_pixels: int = 4096 * 4096
    min_weight: float = 0.0
    max_weight: float = 5.0
    max_json_chars: int = 48 * 1024 * 1024


DEFAULT_LIMITS = PromptLimits()
MAX_NAME_CHARS = 100


@dataclass(frozen=True)
class TextSegment:
    """A text fragment. `lang` (en/de/fr/it/es or None for auto) is metadata: the encoder needs no tag."""

    text: str
    weight: float = 1.0
    lang: str | None = None


@dataclass(frozen=True, eq=False)
class ImageSegment:
    """An image. Two segments are equal when their pixels (by SHA-256), weight and name are."""

    image: Image.Image
    weight: float = 1.0
    name: str | None = None

    @cached_property
    def digest(self) -> str:
        return image_digest(self.image)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageSegment):
            return NotImplemented
        return (self.weight, self.name, self.digest) == (other.weight, other.name, other.digest)

    def __hash__(self) -> int:
        return hash((self.weight, self.name, self.digest))

    def __repr__(self) -> str:
        size = f"{self.image.width}x{self.image.height}" if isinstance(self.image, Image.Image) else "?"
        return f"ImageSegment(<{size} image>, weight={self.weight!r}, name={self.name!r})"


Segment = Union[TextSegment, ImageSegment]


def _describe(index: int, segment: object) -> str:
    kind = {TextSegment: "text", ImageSegment: "image"}.get(type(segment), "?")
    return f"segment {index + 1} ({kind})"


@dataclass(frozen=True)
class MultimodalPrompt:
    """An ordered interleaving of text fragments and images, e.g. ("a photo of", <image>, ("in red", 1.5))."""

    segments: tuple[Segment, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if isinstance(self.segments, (TextSegment, ImageSegment)) or not isinstance(self.segments, Iterable):
            raise PromptError("segments must be a list of TextSegment and ImageSegment")
        object.__setattr__(self, "segments", tuple(self.segments))

    # --- construction -----------------------------------------------------------------------------------------
    @classmethod
    def of(cls, *parts: str | Image.Image | Segment) -> MultimodalPrompt:
        """Build a prompt from strings, images and segments: `MultimodalPrompt.of("a photo of", img, "at night")`."""
        segments = []
        for part in parts:
            if isinstance(part, str):
                part = TextSegment(part)
            elif isinstance(part, Image.Image):
                part = ImageSegment(part)
            segments.append(part)
        return cls(tuple(segments))

    # --- queries ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.segments)

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(float(s.weight) for s in self.segments)

    @property
    def images(self) -> tuple[Image.Image, ...]:
        return tuple(s.image for s in self.segments if isinstance(s, ImageSegment))

    def content_key(self) -> tuple:
        """A hashable key of everything that changes the encoding (images by digest): the runtime's cache key."""
        return tuple(
            ("text", s.text, float(s.weight)) if isinstance(s, TextSegment) else ("image", s.digest, float(s.weight))
            for s in self.segments
        )

    def with_weight(self, index: int, weight: float) -> MultimodalPrompt:
        """A copy with segment `index` re-weighted (used by weight sweeps)."""
        if not -len(self.segments) <= index < len(self.segments):
            raise PromptError(f"there is no segment {index + 1}; the prompt has {len(self.segments)}")
        segments = list(self.segments)
        segments[index] = replace(segments[index], weight=weight)
        return MultimodalPrompt(tuple(segments))

    # --- validation -------------------------------------------------------------------------------------------
    def validate(self, limits: PromptLimits = DEFAULT_LIMITS, *, allow_empty: bool = False) -> MultimodalPrompt:
        """Check every limit; return self, or raise `PromptError` naming the first offending segment."""
        if not self.segments and not allow_empty:
            raise PromptError("the prompt is empty: add a text fragment or an image")
        if len(self.segments) > limits.max_segments:
            raise PromptError(f"the prompt has {len(self.segments)} segments; the limit is {limits.max_segments}")
        n_images = sum(isinstance(s, ImageSegment) for s in self.segments)
        if n_images > limits.max_images:
            raise PromptError(f"the prompt has {n_images} images; the limit is {limits.max_images}")
        for index, segment in enumerate(self.segments):
            what = _describe(index, segment)
            if isinstance(segment, TextSegment):
                _check_text(segment, what, limits)
            elif isinstance(segment, ImageSegment):
                _check_image(segment, what, limits)
            else:
                raise PromptError(f"{what}: expected a TextSegment or ImageSegment, got {type(segment).__name__}")
            _check_weight(segment.weight, what, limits)
        if self.segments and not allow_empty and all(isinstance(s, TextSegment) and is_blank(s.text) for s in self.segments):
            raise PromptError("the prompt is empty: it has no visible text (only spaces or invisible characters) and no image")
        return self

    # --- JSON -------------------------------------------------------------------------------------------------
    def to_dict(self, image_ref: Callable[[ImageSegment], str] = lambda s: to_data_url(s.image)) -> dict[str, Any]:
        """The JSON form; images become `image_ref(segment)` (a PNG data URL by default)."""
        out = []
        for s in self.segments:
            if isinstance(s, TextSegment):
                item: dict[str, Any] = {"type": "text", "text": s.text, "weight": float(s.weight)}
                if s.lang is not None:
                    item["lang"] = s.lang
            else:
                item = {"type": "image", "image": image_ref(s), "weight": float(s.weight)}
                if s.name is not None:
                    item["name"] = s.name
            out.append(item)
        return {"segments": out}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(**kwargs), ensure_ascii=False)

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        allow_paths: bool = False,
        limits: PromptLimits = DEFAULT_LIMITS,
        image_loader: Callable[[Any, str], Image.Image] | None = None,
    ) -> MultimodalPrompt:
        """Parse the JSON form and validate it.

        Image references are data URLs; local paths only with `allow_paths` (never for network input).
        `image_loader(ref, what)` replaces that resolution (the UI uses it for uploaded file handles).
        """
        if not isinstance(data, dict) or "segments" not in data:
            raise PromptError('a prompt must be a JSON object like {"segments": [...]}')
        unknown = set(data) - {"segments"}
        if unknown:
            raise PromptError(f"unknown prompt field(s): {', '.join(sorted(shorten(k) for k in unknown)[:5])}")
        items = data["segments"]
        if not isinstance(items, list):
            raise PromptError('"segments" must be a list')
        if len(items) > limits.max_segments:
            raise PromptError(f"the prompt has {len(items)} segments; the limit is {limits.max_segments}")
        images = sum(isinstance(item, dict) and item.get("type") == "image" for item in items)
        if images > limits.max_images:  # before a single one is decoded
            raise PromptError(f"the prompt has {images} images; the limit is {limits.max_images}")

        def load(ref: Any, what: str) -> Image.Image:
            if image_loader is not None:
                return image_loader(ref, what)
            if not isinstance(ref, str):
                raise PromptError(f"{what}: the image reference must be a string")
            return load_image(ref, max_pixels=limits.max_image_pixels, allow_paths=allow_paths, what=what)

        segments = [_segment_from_dict(i, item, load) for i, item in enumerate(items)]
        return cls(tuple(segments)).validate(limits)

    @classmethod
    def from_json(cls, text: str | bytes, **kwargs: Any) -> MultimodalPrompt:
        limits = kwargs.get("limits", DEFAULT_LIMITS)
        if not isinstance(text, (str, bytes)):
            raise PromptError(f"expected JSON text, got {type(text).__name__}")
        if len(text) > limits.max_json_chars:
            raise PromptError(f"the prompt JSON is longer than {limits.max_json_chars:,} characters")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise PromptError(f"the prompt is not valid JSON ({error})") from None
        return cls.from_dict(data, **kwargs)


_TEXT_KEYS = {"type", "text", "weight", "lang"}
_IMAGE_KEYS = {"type", "image", "weight", "name"}


def _segment_from_dict(index: int, item: Any, load: Callable[[Any, str], Image.Image]) -> Segment:
    where = f"segment {index + 1}"
    if not isinstance(item, dict):
        raise PromptError(f'{where}: expected an object like {{"type": "text", "text": "..."}}')
    kind = item.get("type")
    keys = {"text": _TEXT_KEYS, "image": _IMAGE_KEYS}.get(kind) if isinstance(kind, str) else None
    if keys is None:
        raise PromptError(f'{where}: "type" must be "text" or "image", got {shorten(kind)}')
    unknown = set(item) - keys
    if unknown:
        raise PromptError(f"{where} ({kind}): unknown field(s) {', '.join(sorted(shorten(k) for k in unknown)[:5])}")
    weight = finite_number(item.get("weight", 1.0), f"{where} ({kind}): weight", DEFAULT_LIMITS.min_weight, DEFAULT_LIMITS.max_weight)
    if kind == "text":
        text, lang = item.get("text"), item.get("lang")
        if not isinstance(text, str):
            raise PromptError(f'{where} (text): "text" must be a string')
        if lang == "auto":
            lang = None
        if lang is not None and not isinstance(lang, str):
            raise PromptError(f'{where} (text): "lang" must be a string')
        return TextSegment(text, float(weight), lang)
    if "image" not in item:
        raise PromptError(f'{where} (image): "image" is missing')
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise PromptError(f'{where} (image): "name" must be a string')
    return ImageSegment(load(item["image"], f"{where} (image)"), float(weight), name)


def _check_text(segment: TextSegment, what: str, limits: PromptLimits) -> None:
    if not isinstance(segment.text, str):
        raise PromptError(f"{what}: the text must be a string, got {type(segment.text).__name__}")
    if len(segment.text) > limits.max_text_chars:
        raise PromptError(f"{what} has {len(segment.text)} characters; the limit is {limits.max_text_chars}")
    check_unicode(segment.text, what)
    if not segment.text:
        raise PromptError(f"{what} is empty: type some text or remove the segment")
    if segment.lang is not None and segment.lang not in LANGUAGES:
        raise PromptError(f"{what}: unknown language {shorten(segment.lang)}; use one of {', '.join(LANGUAGES)} or auto")


def _check_image(segment: ImageSegment, what: str, limits: PromptLimits) -> None:
    image = segment.image
    if not isinstance(image, Image.Image):
        raise PromptError(f"{what}: expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise PromptError(f"{what} has no pixels ({image.width}x{image.height})")
    if image.width * image.height > limits.max_image_pixels:
        raise PromptError(
            f"{what} is {image.width}x{image.height} pixels; the limit is {limits.max_image_pixels:,} pixels"
        )
    if segment.name is not None:
        if not isinstance(segment.name, str) or len(segment.name) > MAX_NAME_CHARS:
            raise PromptError(f"{what}: the name must be a string of at most {MAX_NAME_CHARS} characters")
        check_unicode(segment.name, f"{what}: the name")


def _check_weight(weight: Any, what: str, limits: PromptLimits) -> None:
    finite_number(weight, f"{what}: weight", limits.min_weight, limits.max_weight)
