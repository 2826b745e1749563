"""What the app does, as plain functions over a `Studio`: no Gradio here, so every handler is testable directly.

A composition is the composer's value: `{"segments": [{"type": "text", "text", "weight", "lang"} |
{"type": "image", "path", "weight", "name"}]}`, where an image `path` must point into one of the studio's
image folders (Gradio's upload folder, the studio's own image store, or the bundled examples); any other path
that arrives from a browser is refused.
"""

from __future__ import annotations

import atexit
import base64
import json
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from multifusion.checks import check_unicode, is_blank, shorten
from multifusion.errors import PromptError
from multifusion.images import load_image
from multifusion.model_card import ModelCard
from multifusion.png_chunks import PngText
from multifusion.metadata import PARAMETERS_KEY, generation_record, parameters_text, read_record, save_png
from multifusion.prompt import DEFAULT_LIMITS, LANGUAGES, ImageSegment, MultimodalPrompt
from multifusion.runtime import MAX_SEED, GenerationSettings, Runtime, image_seed
from multifusion.syntax import escape_text, format_prompt, parse_prompt, read_emphasis

from .waiting_line import Ticket, WaitingLine

RANDOM_SEED = -1  # as a seed: draw a new one for this run
MAX_NEGATIVE_CHARS = DEFAULT_LIMITS.max_text_chars * 4  # a negative prompt's text, all its segments together
SETTING_KEYS = ("steps", "guidance", "seed", "width", "height", "num_images", "negative", "manipulate", "auto_balance")


def temporary_folder(prefix: str) -> Path:
    """A new temporary folder, removed when the process exits (a Space's disk must not fill across restarts)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def remember(sessions: OrderedDict, session: str, value: Any, limit: int = 10_000) -> None:
    """Set `sessions[session]` as the newest entry, forgetting the oldest past `limit` (clients choose session
    ids, so what is kept per session must stay bounded; the newest are the ones whose jobs may still wait)."""
    sessions.pop(session, None)
    sessions[session] = value
    while len(sessions) > limit:
        sessions.popitem(last=False)


def keep_newest(folder: Path, count: int) -> None:
    """Delete all but the `count` most recently written files of `folder`."""
    files = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[count:]:
        old.unlink(missing_ok=True)


class Cancelled(Exception):
    """The user pressed Cancel; generation stopped between two steps."""


@dataclass
class RunningJob:
    cancel: threading.Event
    ticket: Ticket

    def advance(self, step: int, total: int) -> None:
        self.ticket.done = step / max(total, 1)


@dataclass
class Studio:
    """The app's server-side state: the runtime, where files go, and per-session cancel flags."""

    runtime: Runtime
    model_name: str
    card: ModelCard = field(default_factory=ModelCard)  # what the model declares it draws and knows
    work_dir: Path = field(default_factory=lambda: temporary_folder("multifusion-studio-"))
    max_files: int = 400  # PNGs kept in each of the output and image folders: the newest; the disk stays bounded
    trusted_dirs: tuple[Path, ...] = ()
    line: WaitingLine = field(default_factory=WaitingLine)  # the jobs waiting for the model, with their costs
    _jobs: dict[str, set[threading.Event]] = field(default_factory=dict)  # per session: its running jobs' cancel flags
    _jobs_lock: threading.Lock = field(default_factory=threading.Lock)
    _gone: OrderedDict[str, None] = field(default_factory=OrderedDict)  # sessions whose tab closed
    _cancels: OrderedDict[str, int] = field(default_factory=OrderedDict)  # per session: how many times it cancelled

    def __post_init__(self) -> None:
        self.image_store.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)

    @property
    def image_store(self) -> Path:
        return self.work_dir / "images"

    @property
    def output_dir(self) -> Path:
        return self.work_dir / "outputs"

    @contextmanager
    def job(self, session: str, cost: float, clicked: int | None = None) -> Iterator[RunningJob]:
        """A running job of `session` that costs `cost` (`Runtime.cost`): its own cancel flag, which
        `cancel(session)` sets and a later job of the same session never clears, and its place in the line.

        `clicked` is `cancels(session)` when the job's button was clicked: a cancel since then (the visitor pressed
        Cancel while the job waited, or while Gradio was starting it) stops it before it starts."""
        with self._jobs_lock:
            if session in self._gone or (clicked is not None and self._cancels.get(session, 0) > clicked):
                raise Cancelled()
        job = RunningJob(threading.Event(), self.line.start(session, cost))
        with self._jobs_lock:
            self._jobs.setdefault(session, set()).add(job.cancel)
        try:
            yield job
        finally:
            self.line.leave(ticket=job.ticket)
            for folder in (self.output_dir, self.image_store):
                keep_newest(folder, self.max_files)
            with self._jobs_lock:
                self._jobs[session].discard(job.cancel)
                if not self._jobs[session]:
                    del self._jobs[session]

    def cancel(self, session: str) -> None:
        """Stop every running job of `session` at its next step, and those of its jobs clicked before now that
        have not started yet when they start (`job`'s `clicked`)."""
        self.line.leave(session)
        with self._jobs_lock:
            remember(self._cancels, session, self._cancels.get(session, 0) + 1)
            for flag in self._jobs.get(session, ()):
                flag.set()

    def cancels(self, session: str) -> int:
        """How many times `session` has cancelled: the mark a click gives its job."""
        with self._jobs_lock:
            return self._cancels.get(session, 0)

    def leave(self, session: str) -> None:
        """`session`'s tab closed: stop its running jobs, and refuse any of its jobs still waiting when its turn
        comes (nobody is there to see them)."""
        with self._jobs_lock:
            remember(self._gone, session, None)
        self.cancel(session)

    # --- images ---------------------------------------------------------------------------------------------
    def store_image(self, image: Image.Image) -> Path:
        """Keep a prompt image by its digest, so a restored PNG can find it again."""
        return self._store(ImageSegment(image))

    def store_prompt_images(self, prompt: MultimodalPrompt) -> None:
        """Keep every image of `prompt` (by the digests its segments already hold)."""
        for segment in prompt.segments:
            if isinstance(segment, ImageSegment):
                self._store(segment)

    def _store(self, segment: ImageSegment) -> Path:
        path = self.image_store / f"{segment.digest}.png"
        if not path.exists():
            segment.image.save(path)
        return path

    def open_image(self, ref: Any, what: str) -> Image.Image:
        """An image from the composer: a path inside a trusted folder (never elsewhere), or a data URL."""
        if isinstance(ref, str) and ref.startswith("data:"):
            return load_image(ref, max_pixels=DEFAULT_LIMITS.max_image_pixels, what=what)
        if not isinstance(ref, str) or not ref:
            raise PromptError(f"{what}: no image given")
        path = Path(ref).resolve()
        if not any(path.is_relative_to(root.resolve()) for root in (self.image_store, *self.trusted_dirs)):
            raise PromptError(f"{what}: only uploaded images can be used")
        return load_image(path, max_pixels=DEFAULT_LIMITS.max_image_pixels, allow_paths=True, what=what)


# --- compositions <-> prompts --------------------------------------------------------------------------------
_DISPLAY_ONLY = ("path", "url", "thumb")  # the composer's own fields on an image card


def composition_to_prompt(studio: Studio, composition: Any) -> MultimodalPrompt:
    """The composer's value as a prompt, checked by the one prompt schema (`MultimodalPrompt.from_dict`, as for
    the API and the CLI): an image card's `path` (or data URL) is its image reference, resolved by
    `Studio.open_image`; `PromptError` names the bad segment. A text card reads the emphasis syntax, as the
    negative box and the CLI do (`(heart:1.4)`, `[green]`), its slider multiplying what its text says."""
    if isinstance(composition, str):
        try:
            composition = json.loads(composition)
        except (ValueError, RecursionError):
            raise PromptError("the composition is not valid JSON") from None
    if isinstance(composition, dict) and isinstance(composition.get("segments"), list):
        composition = {**composition, "segments": [_as_prompt_item(item) for item in composition["segments"]]}
    return read_emphasis(MultimodalPrompt.from_dict(composition, image_loader=studio.open_image))


def _as_prompt_item(card: Any) -> Any:
    """A composer card in the prompt schema's form: an image card's reference is its `path`, display fields go."""
    if not isinstance(card, dict) or card.get("type") != "image":
        return card
    item = {k: v for k, v in card.items() if k not in _DISPLAY_ONLY}
    item["image"] = card.get("path") or card.get("image")
    return item


def settings_from(values: dict[str, Any]) -> GenerationSettings:
    """Settings from plain JSON (the API) or the controls; unknown keys are refused, not ignored. Seed -1 (the
    studio's default) draws a new random seed, which the images' records keep."""
    if not isinstance(values, dict):
        raise PromptError("settings must be a JSON object")
    unknown = set(values) - set(SETTING_KEYS)
    if unknown:
        shown = ", ".join(sorted(shorten(k) for k in unknown)[:5])
        raise PromptError(f"unknown setting(s): {shown}; known: {', '.join(SETTING_KEYS)}")
    kwargs = dict(values)
    for key in ("steps", "seed", "num_images", "width", "height"):
        if kwargs.get(key) is not None and isinstance(kwargs[key], float) and kwargs[key].is_integer():
            kwargs[key] = int(kwargs[key])  # sliders and JSON send 25.0 for 25
    if kwargs.get("seed") == RANDOM_SEED and not isinstance(kwargs["seed"], bool):
        kwargs["seed"] = secrets.randbelow(MAX_SEED + 1)
    kwargs["negative"] = _negative(kwargs.get("negative"))
    return GenerationSettings(**kwargs).validate()


def _negative(value: Any) -> MultimodalPrompt | None:
    """The negative prompt from a string (prompt syntax), a prompt object, or None; errors say "negative prompt"."""
    if value is not None and not isinstance(value, (str, dict)):
        raise PromptError(f"the negative prompt must be a text or a prompt object, got {shorten(value)}")
    try:
        if isinstance(value, dict):
            return MultimodalPrompt.from_dict(value)
        if isinstance(value, str):
            if len(value) > MAX_NEGATIVE_CHARS:  # before parsing: 60 MB took 10 s
                raise PromptError(f"it has {len(value):,} characters; the limit is {MAX_NEGATIVE_CHARS:,}")
            check_unicode(value, "the text")
            return None if is_blank(value) else parse_prompt(value).validate(allow_empty=True)
    except PromptError as error:
        raise PromptError(f"negative prompt, {error}") from None
    return None


# --- generation ------------------------------------------------------------------------------------------------
@dataclass
class Result:
    """Generated images, their PNG files (with metadata), the records in them and the gallery's captions."""

    images: list[Image.Image] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)

    def keep(self, studio: Studio, prompt: MultimodalPrompt, settings: GenerationSettings, image: Image.Image,
             index: int, caption: str = "") -> None:  # fmt: skip
        """Add image `index` of a run of `prompt` with (completed) `settings`, written as a PNG with its record,
        so that every picture the studio shows can be traced and restored."""
        record = generation_record(prompt, settings.record(), studio.model_name, image_index=index,
                                   image_seed=image_seed(settings.seed, index), **studio.runtime.record_facts())  # fmt: skip
        digest = ImageSegment(image).digest[:12]
        self.paths.append(save_png(image, studio.output_dir / f"multifusion-{record['image_seed']}-{digest}.png", record))
        self.images.append(image)
        self.records.append(record)
        self.captions.append(" · ".join(filter(None, (caption, f"seed {record['image_seed']}"))))

    def gallery(self) -> list[tuple[str, str]]:
        return [(str(path), caption) for path, caption in zip(self.paths, self.captions)]


def generate(
    studio: Studio,
    prompt: MultimodalPrompt,
    settings: GenerationSettings,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Result:
    """Generate, write PNGs carrying the record, and keep the prompt's images for restoring."""
    settings = studio.runtime.complete(settings)
    result = Result()
    for index, image in enumerate(studio.runtime.generate(prompt, settings, on_step=stepper(on_step, cancel))):
        result.keep(studio, prompt, settings, image, index)
    studio.store_prompt_images(prompt)
    return result


def stepper(on_step: Callable[[int, int], None] | None, cancel: threading.Event | None) -> Callable[[int, int], None]:
    """The runtime's per-step callback: report progress, and stop at the next step once `cancel` is set."""

    def step(i: int, n: int) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if on_step is not None:
            on_step(i, n)

    return step


def compare_languages(
    studio: Studio,
    texts: dict[str, str],
    settings: GenerationSettings,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[Result, dict[str, float]]:
    """The same seed for one prompt in several languages; each language's encoding similarity to the first."""
    unknown = set(texts) - set(LANGUAGES)
    if unknown:
        raise PromptError(f"unknown language(s): {', '.join(sorted(shorten(k) for k in unknown)[:5])}; use {', '.join(LANGUAGES)}")
    for lang, text in texts.items():
        if not isinstance(text, str):
            raise PromptError(f"{lang}: the prompt must be a text, got {shorten(text)}")
        check_unicode(text, f"{lang}: the prompt")
    filled = {lang: text for lang, text in texts.items() if not is_blank(text)}
    if not filled:
        raise PromptError("write the prompt in at least one language")
    prompts = {}
    for lang, text in filled.items():
        try:
            prompts[lang] = parse_prompt(text).validate()
        except PromptError as error:
            raise PromptError(f"{lang}: {error}") from None
    first = next(iter(prompts))
    reference = _mean_encoding(studio, prompts[first])
    one_each = studio.runtime.complete(replace(settings, num_images=1))
    images = studio.runtime.generate_many(list(prompts.values()), one_each, stepper(on_step, cancel))  # the same seed
    result, similarity = Result(), {}
    for (lang, prompt), (image,) in zip(prompts.items(), images):
        similarity[lang] = float(_cosine(_mean_encoding(studio, prompt), reference))
        result.keep(studio, prompt, one_each, image, 0, f"{lang} · sim. {similarity[lang]:.3f}")
    return result, similarity


def _mean_encoding(studio: Studio, prompt: MultimodalPrompt):
    from multifusion.encoder import mean_pool

    return mean_pool(studio.runtime.encode(prompt).embeds.float().cpu())[0]


def _cosine(a, b) -> float:
    import torch

    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def weight_sweep(
    studio: Studio,
    prompt: MultimodalPrompt,
    index: int,
    low: float,
    high: float,
    count: int,
    settings: GenerationSettings,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Result:
    """One segment's weight over [low, high] in `count` steps, same seed: a strip of images."""
    if not isinstance(count, int) or not 2 <= count <= 9:
        raise PromptError(f"the sweep takes 2 to 9 images, got {count!r}")
    if not 1 <= index <= len(prompt.segments):
        raise PromptError(f"pick a segment from 1 to {len(prompt.segments)}, got {index}")
    weights = [round(low + (high - low) * k / (count - 1), 4) for k in range(count)]
    swept = [prompt.with_weight(index - 1, w).validate() for w in weights]
    one_each = studio.runtime.complete(replace(settings, num_images=1))
    result = Result()
    for weight, prompt_at, (image,) in zip(weights, swept, studio.runtime.generate_many(swept, one_each, stepper(on_step, cancel))):
        result.keep(studio, prompt_at, one_each, image, 0, f"weight {weight:.2f}")
    studio.store_prompt_images(prompt)  # every swept prompt holds the same images
    return result


def restore(studio: Studio, png: Image.Image | PngText) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Rebuild the composition and settings from a PNG made by MultiFusion; lists images it could not find."""
    record = read_record(png)
    segments, missing = [], []
    for index, item in enumerate(record["prompt"].get("segments", [])):
        if item.get("type") == "image":
            digest = str(item.get("image", "")).removeprefix("sha256:")
            path = studio.image_store / f"{digest}.png"
            if not digest.isalnum() or not path.exists():
                missing.append(f"segment {index + 1}")
                continue
            segments.append({**item, "image": None, "path": str(path)})
        else:
            segments.append({**item, "text": escape_text(str(item.get("text", ""))), "lang": item.get("lang") or "auto"})
    settings = {k: v for k, v in record["settings"].items() if k in SETTING_KEYS}
    settings["seed"] = record.get("image_seed", settings.get("seed", 0))
    settings["num_images"] = 1
    return {"segments": segments}, settings, missing


def vocabulary_notice(studio: Studio, composition: Any) -> str:
    """A gentle note (Markdown) naming the words of the composition's text cards that the model never learned,
    and what it does draw; "" when every word is known or the model declares no vocabulary."""
    if isinstance(composition, dict) and isinstance(composition.get("segments"), list):
        texts = [s.get("text") for s in composition["segments"] if isinstance(s, dict) and isinstance(s.get("text"), str)]
    else:
        texts = []
    unknown = studio.card.unknown_words(texts)
    if not unknown:
        return ""
    draws = f" It draws {studio.card.draws}." if studio.card.draws else ""
    words = ", ".join(f"“{escape(w)}”" for w in unknown)
    return f"**Note:** this model has not learned {words}; it reads the rest of the prompt.{escape(draws)}"


def png_info(png: Image.Image | PngText) -> tuple[str, dict[str, Any] | None]:
    """How a PNG was made, without restoring it: its `parameters` text (AUTOMATIC1111's form, from this studio or
    any tool that writes it) and its MultiFusion record, if it has one."""
    chunks = getattr(png, "text", None) or png.info
    try:
        record = read_record(png)
    except PromptError:
        record = None
    text = chunks.get(PARAMETERS_KEY)
    if text is None and record is not None:
        text = parameters_text(record, png.size)
    if text is None:
        raise PromptError("this PNG carries no generation parameters: neither a MultiFusion record nor AUTOMATIC1111's "
                          "parameters text")
    return str(text), record


def negative_as_text(negative: dict[str, Any] | None) -> str | None:
    """A recorded negative prompt in the string syntax, for the Negative prompt box ("" for none); None when it
    holds images, which the box cannot take."""
    if not negative:
        return ""
    if any(isinstance(s, dict) and s.get("type") == "image" for s in negative.get("segments", [])):
        return None
    return format_prompt(MultimodalPrompt.from_dict(negative))[0]


def png_data_url(path: Path) -> str:
    """A PNG the studio wrote, as a data URL: the file itself, so its `multifusion` and `parameters` records travel
    with the image as they do with a download."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def size_notice(runtime: Runtime, width: Any, height: Any) -> str:
    """A note when a size is above what the model was trained at, where many models repeat their scene in tiles
    instead of adding detail; "" otherwise."""
    native = runtime.native_side
    try:
        larger = max(float(width or native), float(height or native)) > native
    except (TypeError, ValueError):
        return ""
    if not larger:
        return ""
    return (f"This model was trained at {native}×{native} px: above that it may repeat its scene in tiles rather "
            "than draw it larger.")


def data_urls(result: Result) -> dict[str, Any]:
    """The API's answer: images as PNG data URLs (the written files, records included) with their records."""
    return {"images": [png_data_url(path) for path in result.paths], "metadata": result.records}
