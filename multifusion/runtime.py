"""The thin wrapper the app and the CLI share: device, dtype, offload, compile, prompt cache, seeds, OOM errors.

    runtime = Runtime.load("weights/multifusion-tiny")
    images = runtime.generate(prompt, GenerationSettings(seed=7, num_images=4))

Image i of a request uses a CPU generator seeded with `seed + i` and is its own U-Net call, so it is bit-identical
to that seed made alone (with `batch_images`, one batched call: the same starting noise, but batched kernels may
round a pixel by a few levels). One generation runs at a time; `seconds_per_cost` measures the device's speed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import PIL.Image
import torch

from . import memory
from .checks import finite_number, shorten
from .errors import OutOfMemoryError, PromptError
from .families import FamilyInfo, ModelFamily, family_of, load_family
from .loras import load_loras, parse_lora, resolve
from .pipeline import as_prompts
from .prompt import MultimodalPrompt

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "weights" / "multifusion-tiny"
MAX_SEED = 2**32 - 1
MANIPULATE_MODES = ("both", "encoder", "unet", "transformer")  # every family's places; each model accepts its own


@dataclass
class RuntimeOptions:
    """How to run a pipeline. `None` picks automatically: cuda > mps > cpu; fp16 on CUDA, fp32 elsewhere."""

    device: str | None = None
    dtype: str | None = None  # "float32", "float16" or "bfloat16"
    cpu_offload: bool = False  # on a GPU, offload="model" (kept for older callers; ignored on a CPU)
    offload: str | None = None  # "model", "group", "group-leaf" or "sequential": `memory.py`
    group_blocks: int = 1  # with offload="group": the blocks that visit the GPU together
    device_map: str | None = None  # "balanced": the components spread over several GPUs
    quantize: str | None = None  # "8bit" or "4bit" (bitsandbytes, CUDA), "int8wo" (torchao): the `quant` extra
    loras: tuple[str, ...] = ()  # "PATH_OR_ID[:SCALE]" each (`loras.py`)
    compile_unet: bool | None = None  # torch.compile the denoiser (U-Net or transformer); None: on CUDA only (benchmarks/fast.py)
    compile_backend: str = "inductor"  # a torch.compile backend; "eager" traces graphs without generating code
    compiled_shapes: int = 64  # compiled U-Net graphs kept: one per (batch, height, width) it has run
    # Compile the denoiser's repeated block once (diffusers' `compile_repeated_blocks`) instead of the whole model:
    # the first image is not minutes late. None: for transformers (60 identical blocks), not for U-Nets.
    compile_regional: bool | None = None
    scheduler: str | None = None  # a `schedulers.SCHEDULERS` name; None keeps the model's own
    vae_tiling: bool = False  # decode in tiles, for large images on small GPUs
    cache_size: int = 64  # encoded prompts kept (LRU)
    # One U-Net call for all of a request's images (and prompts): faster on large GPUs, but batched kernels round
    # differently, so an image may differ from its seed alone by up to 3/255. Off: one image per call, each
    # bit-identical to its seed alone, so every PNG's record regenerates exactly its pixels.
    batch_images: bool = False
    max_side_multiple: int = 4  # the largest width/height a request may ask for, in multiples of the native size
    max_cost: float = 400.0  # per request: images x steps x (pixels / native pixels); 400 = 8 native images x 50 steps


@dataclass
class GenerationSettings:
    """Everything besides the prompt that decides an image. Checked by `validate`."""

    steps: int | None = None  # None: the model's default (`Runtime.default_steps`)
    guidance: float | None = None  # None: the model's default (`Runtime.default_guidance`)
    seed: int = 0
    width: int | None = None
    height: int | None = None
    num_images: int = 1
    negative: MultimodalPrompt | str | None = None
    manipulate: str = "both"
    auto_balance: bool | None = None  # None: the model's default (`FamilyInfo.default_auto_balance`)
    max_steps: int = field(default=150, repr=False)
    max_images: int = field(default=8, repr=False)
    max_side: int = field(default=1024, repr=False)

    def validate(self, size_multiple: int | None = None, manipulate_modes: Sequence[str] = MANIPULATE_MODES,
                 max_side: int | None = None) -> GenerationSettings:  # fmt: skip
        """Check every setting. Sizes are checked against a model's limits (`size_multiple`, `max_side`: what
        `Runtime.complete` passes); without them only that they are whole numbers, so that no message quotes a
        limit that is not the loaded model's."""

        def integer(name: str, value: Any, low: int, high: int | None) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
                bounds = f" from {low} to {high}" if high is not None else " of at least 1"
                raise PromptError(f"{name} must be a whole number{bounds}, got {shorten(value)}")

        if self.steps is not None:
            integer("steps", self.steps, 1, self.max_steps)
        integer("seed", self.seed, 0, MAX_SEED)
        integer("number of images", self.num_images, 1, self.max_images)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is None:
                continue
            if size_multiple is None:
                integer(name, value, 1, None)
                continue
            top = max_side if max_side is not None else self.max_side
            integer(name, value, size_multiple, top - top % size_multiple)
            if value % size_multiple:
                raise PromptError(f"{name} must be a multiple of {size_multiple} (from {size_multiple} to "
                                  f"{top - top % size_multiple}), got {value}")  # fmt: skip
        if self.guidance is not None:
            finite_number(self.guidance, "guidance", 0, 30)
        if not isinstance(self.manipulate, str) or self.manipulate not in manipulate_modes:
            raise PromptError(f"manipulation mode must be one of {', '.join(manipulate_modes)}, got {shorten(self.manipulate)}")
        if self.auto_balance is not None and not isinstance(self.auto_balance, bool):
            raise PromptError(f"auto_balance must be true or false, got {shorten(self.auto_balance)}")
        if self.negative is not None and not isinstance(self.negative, (MultimodalPrompt, str)):
            raise PromptError(f"the negative prompt must be a text or a prompt, got {shorten(self.negative)}")
        return self

    def record(self) -> dict[str, Any]:
        """The settings as JSON-ready data (the negative prompt's images by digest), for PNG metadata."""
        out = {k: v for k, v in asdict(self).items() if not k.startswith("max_") and k != "negative"}
        negative = as_prompts(self.negative)[0] if self.negative is not None else None
        out["negative"] = None if negative is None else negative.to_dict(image_ref=lambda s: "sha256:" + s.digest)
        return out


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device if this machine has it (a clear `PromptError` if not), else cuda > mps > cpu."""
    if requested:
        try:
            device = torch.device(requested)
        except (RuntimeError, ValueError):
            raise PromptError(f"unknown device {shorten(requested)}; use cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
            raise PromptError(f"device {requested!r} is not available: this torch build or machine has no such CUDA device")
        if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise PromptError("device 'mps' is not available on this machine")
        if device.type not in ("cpu", "cuda", "mps"):
            raise PromptError(f"device {requested!r} is not supported; use cpu, cuda, cuda:N or mps")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, requested: str | None = None) -> torch.dtype:
    if requested:
        if requested not in ("float32", "float16", "bfloat16"):
            raise PromptError(f"dtype must be float32, float16 or bfloat16, got {requested!r}")
        return getattr(torch, requested)
    return torch.float16 if device.type == "cuda" else torch.float32


class EncodingCache:
    """A thread-safe LRU of prompt encodings, keyed by prompt content (images by digest) and options."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        value = compute()
        with self._lock:
            self.misses += 1
            if self.size > 0:
                self._items[key] = value
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return value


def compile_by_shape(denoiser: torch.nn.Module, backend: str = "inductor", shapes: int = 64, regional: bool = False) -> None:
    """Compile `denoiser` (a U-Net or a transformer; `regional`: its repeated block) to one static graph per input
    shape: a shape run before reuses its graph, a new one compiles once. Each size takes two graphs when guidance
    stops before the last step (a guided batch, then half of it).

    Not torch's default (shapes made symbolic from the second one on): the U-Net's convolutions still guard on
    their sizes, so every new size recompiled anyway, the second one slowest (benchmarks/compile_modes.py: on a
    2-core CPU 291 s, then 73-93 s; static graphs 116-118 s each, the same in all), and past dynamo's limit of 8
    graphs (4 sizes) new sizes silently ran uncompiled. The limit is raised to `shapes` graphs here."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, shapes)
    if regional:  # the repeated block compiled once, reused by all of them (diffusers' regional compilation)
        denoiser.compile_repeated_blocks(backend=backend, dynamic=False)
    else:
        denoiser.compile(backend=backend, dynamic=False)


class Runtime:
    """A model family's pipeline placed on a device, with a prompt-encoding cache and seeded, OOM-safe generation."""

    def __init__(self, pipe: ModelFamily | Any, options: RuntimeOptions | None = None, *, _loaded: bool = False) -> None:
        self.options = options or RuntimeOptions()
        self.device = pick_device(self.options.device)
        memory.check(self.offload, self.options.quantize, self.options.device_map, self.device)
        if (self.options.quantize or self.options.device_map) and not _loaded:
            raise PromptError("quantize and device_map apply while a model loads: use Runtime.load(model, options)")
        self.family = family_of(pipe)
        self.pipe = self.family.pipe
        self.cache = EncodingCache(self.options.cache_size)
        # A pipeline's scheduler keeps state across steps, so two threads must never denoise with it at once (a
        # server's cancelled job may still be finishing its step when the next one starts).
        self._generating = threading.Lock()
        self.seconds_per_cost: float | None = None  # measured: seconds per native-image step (moving average)
        if self.options.scheduler:
            self.family.set_scheduler(self.options.scheduler)
        self.loras = [resolve(parse_lora(spec)) for spec in self.options.loras]
        if self.loras:
            load_loras(self.pipe, self.loras)
            self._take_lora_defaults()
        memory.place(self.pipe, self.device, self.offload, self.options.group_blocks, device_mapped=bool(self.options.device_map))
        if self.options.vae_tiling:
            self.pipe.vae.enable_tiling()
        self.compiled = self.options.compile_unet if self.options.compile_unet is not None else self.device.type == "cuda"
        self._shapes_run: set[tuple[int, int, int]] = set()  # (images per denoiser call, width, height)
        if self.compiled:
            regional = self.options.compile_regional
            regional = self.info.denoiser == "transformer" if regional is None else regional
            compile_by_shape(self.family.denoiser, self.options.compile_backend, self.options.compiled_shapes, regional)

    @property
    def offload(self) -> str | None:
        """The offload mode in force: `options.offload`, or "model" for `cpu_offload` on an accelerator."""
        if self.options.offload:
            return self.options.offload
        return "model" if self.options.cpu_offload and self.device.type != "cpu" else None

    def _take_lora_defaults(self) -> None:
        """What the LoRAs declare (the first to declare each) becomes the model's default steps, guidance, shift."""
        declared: dict[str, float] = {}
        for lora in self.loras:
            declared = {**lora.declared, **declared}
        if "shift" in declared:
            self.family.set_shift(declared["shift"])
        steps, guidance = declared.get("steps"), declared.get("guidance")
        self.family.info = replace(self.family.info, default_steps=int(steps or self.family.info.default_steps),
                                   default_guidance=self.family.info.default_guidance if guidance is None else guidance)  # fmt: skip

    @classmethod
    def load(cls, model: str | Path = DEFAULT_MODEL, options: RuntimeOptions | None = None) -> Runtime:
        """Load a model folder (or a hub id, with network) as the family its `model_index.json` names, and place
        it by `options` (quantized weights and a device map apply while it loads)."""
        options = options or RuntimeOptions()
        device = pick_device(options.device)
        memory.check(options.offload, options.quantize, options.device_map, device)  # before minutes of loading
        family = load_family(model, pick_dtype(device, options.dtype), quantize=options.quantize, device_map=options.device_map)
        family.pipe.set_progress_bar_config(disable=True)
        return cls(family, options, _loaded=True)

    def record_facts(self) -> dict[str, Any]:
        """What every PNG record of this runtime says beside the prompt and settings: sampler, guided share, LoRAs."""
        facts: dict[str, Any] = {"scheduler": self.scheduler_name, "guidance_end": self.default_guidance_end}
        if self.loras:
            facts["loras"] = self.lora_records
        return facts

    @cached_property
    def lora_records(self) -> list[dict[str, Any]]:
        """Each LoRA's name, scale and hash, made once (hashing reads each file)."""
        return [lora.record() for lora in self.loras]

    # --- what the model declares --------------------------------------------------------------------------------
    @property
    def info(self) -> FamilyInfo:
        return self.family.info

    @property
    def native_side(self) -> int:
        """The side the model draws at by default (the fused family: its U-Net's sample size times the VAE's scale)."""
        return self.info.native_side

    @property
    def size_multiple(self) -> int:
        return self.info.size_multiple

    @property
    def default_steps(self) -> int:
        """The number of steps the model declares as its default."""
        return self.info.default_steps

    @property
    def default_guidance(self) -> float:
        return self.info.default_guidance

    @property
    def default_guidance_end(self) -> float:
        """The share of the steps, from the first, that the model guides by default (1.0: all)."""
        return self.info.default_guidance_end

    @property
    def manipulate_modes(self) -> tuple[str, ...]:
        return self.info.manipulate_modes

    @property
    def scheduler_name(self) -> str:
        return self.family.scheduler_name

    @property
    def max_side(self) -> int:
        return self.native_side * self.options.max_side_multiple

    # --- requests -------------------------------------------------------------------------------------------
    def complete(self, settings: GenerationSettings | None = None) -> GenerationSettings:
        """`settings` (or the defaults) validated, with what they leave to the model filled in: steps, guidance,
        auto_balance."""
        settings = settings or GenerationSettings()
        if settings.steps is None:
            settings = replace(settings, steps=self.default_steps)
        if settings.guidance is None:
            settings = replace(settings, guidance=self.default_guidance)
        if settings.auto_balance is None:
            settings = replace(settings, auto_balance=self.info.default_auto_balance)
        return settings.validate(self.size_multiple, self.manipulate_modes, self.max_side)

    def cost(self, settings: GenerationSettings, n_prompts: int = 1) -> float:
        """What a request costs in native-image steps: images x steps x pixels relative to the native size."""
        settings = self.complete(settings)
        width, height = self._size(settings)
        return n_prompts * settings.num_images * settings.steps * width * height / self.native_side**2

    def _size(self, settings: GenerationSettings) -> tuple[int, int]:
        """The (width, height) a request draws at, the native side where it leaves one open."""
        return settings.width or self.native_side, settings.height or self.native_side

    def check_cost(self, settings: GenerationSettings, n_prompts: int = 1) -> None:
        """Refuse a request that costs (`cost`) more than `max_cost`, saying what to reduce. (Sides over `max_side`
        are refused by `complete`.)"""
        cost = self.cost(settings, n_prompts)
        if cost > self.options.max_cost:
            raise PromptError(f"this request costs {cost:,.0f} native-image steps (images x steps x size); the limit "
                              f"is {self.options.max_cost:,.0f}: use fewer images or steps, or a smaller size")  # fmt: skip

    def warm_up(self) -> None:
        """One image at the model's defaults, so that the first request does not pay for compiling."""
        self.generate("a picture", GenerationSettings(seed=0))

    def encode(self, prompt: MultimodalPrompt, manipulate: str = "both", auto_balance: bool = True) -> Any:
        """The encoding of one validated prompt, from the cache when the same content was encoded before."""
        key = (prompt.content_key(), manipulate, auto_balance)
        return self.cache.get_or_compute(key, lambda: self.family.encode(prompt, manipulate, auto_balance))

    def generate(
        self,
        prompt: MultimodalPrompt | str,
        settings: GenerationSettings | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[PIL.Image.Image]:
        """Generate `settings.num_images` images; `on_step(step, total)` is called after every step.

        Raises `PromptError` for bad input and `OutOfMemoryError` (with advice) when the device runs out.
        """
        return self.generate_many([prompt], settings, on_step)[0]

    def generate_many(
        self,
        prompts: Sequence[MultimodalPrompt | str],
        settings: GenerationSettings | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[list[PIL.Image.Image]]:
        """`settings.num_images` images for each of several prompts, the same seeds for each prompt.

        Image j of every prompt uses `image_seed(seed, j)` and is exactly the image `generate` gives that prompt
        and seed alone (up to rounding with `RuntimeOptions.batch_images`, which makes one batched call)."""
        settings = self.complete(settings)
        with self._generating:  # one generation at a time on the one pipeline, whoever the caller
            shape, began = self._shape(settings, len(prompts)), time.perf_counter()
            compiling = self.compiled and shape not in self._shapes_run
            images = self._generate_many(prompts, settings, on_step)
            self._shapes_run.add(shape)
            if not compiling:  # a compile's seconds say nothing about the device's speed
                spent = (time.perf_counter() - began) / self.cost(settings, len(prompts))
                self.seconds_per_cost = spent if self.seconds_per_cost is None else 0.7 * self.seconds_per_cost + 0.3 * spent
            return images

    def _shape(self, settings: GenerationSettings, n_prompts: int) -> tuple[int, int, int]:
        """(batch, width, height) of the denoiser calls a completed request makes: what a compiled graph is made for."""
        per_call = n_prompts * settings.num_images if self.options.batch_images else 1
        return per_call, *self._size(settings)

    def compiles(self, settings: GenerationSettings | None = None, n_prompts: int = 1) -> bool:
        """Whether this request waits for the denoiser to be compiled: a compiled runtime's first request of a shape."""
        return self.compiled and self._shape(self.complete(settings), n_prompts) not in self._shapes_run

    def _generate_many(self, prompts, settings: GenerationSettings, on_step) -> list[list[PIL.Image.Image]]:
        self.check_cost(settings, len(prompts))
        limits = self.family.limits
        positives = [as_prompts(p)[0].validate(limits) for p in prompts]
        if not positives:
            raise PromptError("no prompt to generate from")
        negative = as_prompts(settings.negative)[0].validate(limits, allow_empty=True)
        encoded = [self.encode(p, settings.manipulate, settings.auto_balance) for p in positives]
        negatives = None
        if settings.guidance > 1:
            negatives = [self.encode(self.family.negative_prompt(negative, p), settings.manipulate, settings.auto_balance)
                         for p in positives]  # fmt: skip
        n = settings.num_images
        if self.options.batch_images:
            generators = [g for _ in positives for g in seeded_generators(settings.seed, n)]  # fresh ones per prompt
            images = self._denoise(encoded, negatives, settings, generators, n, on_step)
            return [images[i * n : (i + 1) * n] for i in range(len(positives))]
        calls = [(i, generator) for i in range(len(encoded)) for generator in seeded_generators(settings.seed, n)]
        images = []
        for done, (i, generator) in enumerate(calls):
            progress = None if on_step is None else (lambda s, total, done=done: on_step(done * total + s, len(calls) * total))
            images += self._denoise([encoded[i]], None if negatives is None else [negatives[i]], settings, [generator], 1, progress)
        return [images[i * n : (i + 1) * n] for i in range(len(positives))]

    def _denoise(self, encoded: list[Any], negatives: list[Any] | None, settings: GenerationSettings,
                 generators: list[torch.Generator], per_prompt: int, on_step: Callable[[int, int], None] | None) -> list[PIL.Image.Image]:  # fmt: skip
        """One family call: `per_prompt` images for each encoded prompt, guided by its negative if given."""
        try:
            return self.family.denoise(encoded, negatives, settings, generators, per_prompt, on_step)
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise OutOfMemoryError(
                f"the GPU ran out of memory making {len(generators)} image(s) at "
                f"{settings.width or 'default'}x{settings.height or 'default'}: make fewer or smaller images, "
                "or start with CPU offload"
            ) from None


def image_seed(seed: int, index: int) -> int:
    """The seed of image `index` of a request: `seed + index`, wrapping past MAX_SEED to 0, so every recorded
    seed is one a request may ask for again."""
    return (seed + index) % (MAX_SEED + 1)


def seeded_generators(seed: int, count: int) -> list[torch.Generator]:
    """One CPU generator per image, seeded `image_seed(seed, i)`, on the CPU whatever the device."""
    return [torch.Generator("cpu").manual_seed(image_seed(seed, i)) for i in range(count)]
