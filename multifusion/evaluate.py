"""Benchmarks on the shapes world (design §7): generate with fixed seeds, read the images with the scorer.

- single: one object per prompt, per language: share of images whose main object has the right shape and colour.
- mcc: two objects (MCC-250 protocol): share of images with both objects in the right colours (and shapes), for
  text-only, multimodal (each object given as a reference image) and mixed prompts.
- weights: "A and B" with B's segment at weight 0, 1 and 2.5: share of images showing B (and A).
- languages: per-language `single` accuracy, its gap to English, and the cosine similarity of each translation's
  pooled encoding (`encoder.mean_pool`) to its English original, with unrelated English captions as baseline.
- paraphrase: per language, one- and two-object prompts phrased with the held-out sentence frames only (`frames.py`:
  structures no training stage reads), in every colour form, cased and punctuated at random: `single` is the share
  whose main object is right, `pair` the share with both objects in the right shapes and colours (`pair_sides`:
  and each on its named side; `pair_by_frame`, `pair_sides_by_frame`: those for each held-out frame, which the
  prompts take in turn).
- terse: per language, one- and two-object prompts in the held-out terse forms only (`frames.py`: tags such as
  "star, blue, simple picture" or "red circle & blue star", combinations no training stage reads), each form in
  every casing in turn ("blue star", "Blue star", "Blue Star", "BLUE STAR"): `single`, `pair` and `pair_sides` as
  for paraphrase, and `single_by_form`, `pair_by_form`, `pair_sides_by_form`.
- image_prompt: one reference image as the whole prompt: the share of images whose main object has its shape and
  colour (and each separately), for the renderer's references and for `foreign` ones drawn by an independent
  routine (`shapes/foreign.py`) on 16- to 512-px canvases, anywhere on white, grey and tinted grounds.

Every figure of single, mcc, paraphrase, terse and image_prompt comes with its `misses`: for each image scored
wrong, its seed, its prompt (images as `<image>`), the objects wanted and what the scorer saw (colour, shape, and
the side in two-object scenes), so a tester can regenerate and look at any miss.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from PIL import Image

from . import __version__
from .pipeline import MultiFusionPipeline
from .encoder import mean_pool
from .errors import PromptError
from .processor import layout_prompts
from .prompt import ImageSegment, MultimodalPrompt, TextSegment
from .schedulers import scheduler_name
from .shapes.captions import CASINGS, LANGUAGES, caption, fill_at_random, fill_terse, frames, noun_phrase, typed
from .shapes.frames import terse_forms
from .shapes.foreign import GROUNDS, draw_object
from .shapes.foreign import SIDES as FOREIGN_SIDES
from .shapes.render import render_reference
from .shapes.scorer import Detection, detect, largest, shows
from .shapes.world import BACKGROUND, COLOURS, SHAPES, SIZES, Scene, ShapeObject, random_scene

WEIGHTS = (0.0, 1.0, 2.5)
SAMPLE_SIZES = {  # scenes per language (single, paraphrase), per variant (mcc, image_prompt), per weight (weights)
    "full": {"single": 32, "mcc": 32, "weights": 24, "similarity": 64, "paraphrase": 32, "terse": 32, "image_prompt": 70},
    "quick": {"single": 8, "mcc": 8, "weights": 8, "similarity": 16, "paraphrase": 8, "terse": 8, "image_prompt": 14},
}
BENCHMARKS: tuple[str, ...] = ("single", "mcc", "weights", "languages", "paraphrase", "terse", "image_prompt")


@dataclass(frozen=True)
class EvalConfig:
    """Sample sizes and generation settings. `quick` shrinks every benchmark for a fast look."""

    quick: bool = False
    steps: int = 25
    guidance: float = 5.0
    guidance_end: float | None = None  # the guided share of the steps; None: the model's default
    seed: int = 0
    batch_size: int = 8

    def n(self, benchmark: str) -> int:
        """Sample size of `benchmark` (a key of `SAMPLE_SIZES`)."""
        return SAMPLE_SIZES["quick" if self.quick else "full"][benchmark]


def _main_object_right(found: list[Detection], obj: ShapeObject) -> bool:
    main = largest(found)
    return main is not None and main.shape == obj.shape and main.colour == obj.colour


def _label(thing: ShapeObject | Detection, sided: bool) -> str:
    return f"{thing.colour} {thing.shape}" + (f" ({thing.side})" if sided and thing.side else "")


def _prompt_text(prompt: MultimodalPrompt) -> str:
    return "".join(s.text if isinstance(s, TextSegment) else "<image>" for s in prompt.segments)


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / max(len(flags), 1)


def _mcc_scene(rng: random.Random) -> Scene:
    """Two objects differing in both shape and colour, as in MCC-250."""
    while True:
        scene = random_scene(rng, 2)
        a, b = scene.objects
        if a.shape != b.shape and a.colour != b.colour:
            return scene


class Evaluator:
    """Runs the benchmarks on one pipeline; `run()` returns the JSON-ready report."""

    def __init__(self, pipe: MultiFusionPipeline, config: EvalConfig, model: str = "", log: Callable[[str], None] = print):
        self.pipe, self.config, self.model, self.log = pipe, config, model, log
        self.refused = 0

    def generate(self, prompts: list[MultimodalPrompt]) -> list[Image.Image]:
        """Images for `prompts`; image i is seeded `seed + i` in every benchmark, so variants are paired. A prompt
        the model refuses (longer than its layout) gets an empty canvas, which scores as wrong, and is counted in
        `self.refused`."""
        taken = [i for i, p in enumerate(prompts) if self._takes(p)]
        self.refused += len(prompts) - len(taken)
        size = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
        images = [Image.new("RGB", (size, size), BACKGROUND) for _ in prompts]
        for start in range(0, len(taken), self.config.batch_size):
            chunk = taken[start : start + self.config.batch_size]
            generators = [torch.Generator().manual_seed(self.config.seed + i) for i in chunk]
            out = self.pipe([prompts[i] for i in chunk], num_inference_steps=self.config.steps,
                            guidance_scale=self.config.guidance, guidance_end=self.config.guidance_end,
                            generator=generators)  # fmt: skip
            for i, image in zip(chunk, out.images):
                images[i] = image
        return images

    def misses(self, prompts: Sequence[MultimodalPrompt], wanted: Sequence[Sequence[ShapeObject]],
               found: Sequence[list[Detection]], right: Sequence[bool]) -> list[dict[str, Any]]:
        """The images scored wrong: seed, prompt, the objects wanted and the objects the scorer found in them."""
        return [{"seed": self.config.seed + i, "prompt": _prompt_text(p),
                 "wanted": [_label(o, len(objects) > 1) for o in objects],
                 "seen": [_label(d, len(objects) > 1) for d in seen]}
                for i, (p, objects, seen, ok) in enumerate(zip(prompts, wanted, found, right)) if not ok]  # fmt: skip

    def scored(self, prompts: list[MultimodalPrompt], wanted: Sequence[Sequence[ShapeObject]],
               judge: Callable[[list[Detection], Sequence[ShapeObject]], bool]) -> dict[str, Any]:
        """Accuracy, n and misses of `prompts`: each image is right when `judge(its detections, its wanted objects)`."""
        found = [detect(im) for im in self.generate(prompts)]
        right = [judge(f, objects) for f, objects in zip(found, wanted)]
        return {"accuracy": _share(right), "n": len(right), "misses": self.misses(prompts, wanted, found, right)}

    def _takes(self, prompt: MultimodalPrompt) -> bool:
        try:
            layout_prompts([prompt], self.pipe.tokenizer, self.pipe.encoder.config.image_tokens, self.pipe.encoder.config.max_length)
        except PromptError:
            return False
        return True

    def single(self) -> dict[str, dict[str, Any]]:
        rng = random.Random(f"single/{self.config.seed}")
        scenes = [random_scene(rng, 1) for _ in range(self.config.n("single"))]
        result = {}
        for lang in LANGUAGES:
            prompts = [MultimodalPrompt.of(caption(s, lang)) for s in scenes]
            result[lang] = self.scored(prompts, [s.objects for s in scenes], lambda f, wanted: _main_object_right(f, wanted[0]))
        return result

    def mcc(self) -> dict[str, dict[str, Any]]:
        rng = random.Random(f"mcc/{self.config.seed}")
        scenes = [_mcc_scene(rng) for _ in range(self.config.n("mcc"))]
        refs = [tuple(render_reference(o, seed=rng.randrange(2**31)) for o in s.objects) for s in scenes]
        variants = {
            "text": lambda s, r: MultimodalPrompt.of(caption(s, "en")),
            "multimodal": lambda s, r: MultimodalPrompt.of(ImageSegment(r[0]), " and ", ImageSegment(r[1])),
            "mixed": lambda s, r: MultimodalPrompt.of(noun_phrase(s.objects[0], "en"), " and ", ImageSegment(r[1])),
        }
        result = {}
        for name, build in variants.items():
            prompts = [build(s, r) for s, r in zip(scenes, refs)]
            result[name] = self.scored(prompts, [s.objects for s in scenes], lambda f, wanted: all(shows(f, o) for o in wanted))
        return result

    def weights(self) -> dict[str, dict[str, float]]:
        rng = random.Random(f"weights/{self.config.seed}")
        scenes = [_mcc_scene(rng) for _ in range(self.config.n("weights"))]
        result = {}
        for weight in WEIGHTS:
            prompts = [
                MultimodalPrompt((TextSegment(noun_phrase(s.objects[0], "en")), TextSegment(" and "),
                                  TextSegment(noun_phrase(s.objects[1], "en"), weight)))  # fmt: skip
                for s in scenes
            ]
            images = self.generate(prompts)
            found = [detect(im) for im in images]
            result[f"{weight:g}"] = {
                "weighted_present": sum(shows(d, s.objects[1]) for d, s in zip(found, scenes)) / len(scenes),
                "other_present": sum(shows(d, s.objects[0]) for d, s in zip(found, scenes)) / len(scenes),
                "n": len(scenes),
            }
        return result

    def embedding(self, text: str) -> torch.Tensor:
        """A caption's pooled encoding (`encoder.mean_pool`)."""
        return mean_pool(self.pipe.encode([MultimodalPrompt.of(text)]).embeds.float().cpu())[0]

    def languages(self, single: dict[str, dict[str, float]]) -> dict[str, Any]:
        rng = random.Random(f"languages/{self.config.seed}")
        scenes = [random_scene(rng) for _ in range(self.config.n("similarity"))]
        english = [self.embedding(caption(s, "en")) for s in scenes]
        cosine = torch.nn.functional.cosine_similarity
        result: dict[str, Any] = {}
        for lang in LANGUAGES:
            similarity = [float(cosine(self.embedding(caption(s, lang)), e, dim=0)) for s, e in zip(scenes, english)]
            result[lang] = {
                "accuracy": single[lang]["accuracy"],
                "gap_to_en": single[lang]["accuracy"] - single["en"]["accuracy"],
                "similarity_to_en": sum(similarity) / len(similarity),
                "n_similarity": len(similarity),
            }
        unrelated = [float(cosine(english[i], english[i - 1], dim=0)) for i in range(1, len(english))]
        result["unrelated_en_baseline"] = sum(unrelated) / max(len(unrelated), 1)
        return result

    def held_out_reading(self, benchmark: str, phrase: Callable[[Scene, int], str], forms: Callable[[int], list[str]]) -> dict[str, Any]:
        """Single and pair scores of `phrase(scene, i)` prompts, with the held-out forms taken in turn
        (`forms(n_objects)`): the reading of phrasing no training stage saw."""
        rng = random.Random(f"{benchmark}/{self.config.seed}")
        n = self.config.n(benchmark)
        singles, pairs = [random_scene(rng, 1) for _ in range(n)], [random_scene(rng, 2) for _ in range(n)]
        refused_before = self.refused
        one_prompts = [MultimodalPrompt.of(phrase(s, i)) for i, s in enumerate(singles)]
        two_prompts = [MultimodalPrompt.of(phrase(s, i)) for i, s in enumerate(pairs)]
        one = [detect(im) for im in self.generate(one_prompts)]
        two = [detect(im) for im in self.generate(two_prompts)]
        single_right = [_main_object_right(f, s.objects[0]) for f, s in zip(one, singles)]
        pair_right = [all(shows(f, o) for o in s.objects) for f, s in zip(two, pairs)]
        pair_sides = [all(shows(f, o, sided=True) for o in s.objects) for f, s in zip(two, pairs)]
        by_form = lambda flags, k: {form: _share(flags[i :: len(forms(k))]) for i, form in enumerate(forms(k))}  # noqa: E731
        return {
            "single": _share(single_right),
            "pair": _share(pair_right),
            "pair_sides": _share(pair_sides),
            "single_by_form": by_form(single_right, 1),
            "pair_by_form": by_form(pair_right, 2),
            "pair_sides_by_form": by_form(pair_sides, 2),
            "n": n,
            "refused": self.refused - refused_before,  # prompts longer than the model's layout (scored wrong)
            "misses": {"single": self.misses(one_prompts, [s.objects for s in singles], one, single_right),
                       "pair_sides": self.misses(two_prompts, [s.objects for s in pairs], two, pair_sides)},
        }

    def paraphrase(self) -> dict[str, dict[str, Any]]:
        result = {}
        for lang in LANGUAGES:
            wording = random.Random(f"paraphrase/{self.config.seed}/{lang}")
            held_out = lambda k: frames(k, lang, "held_out")  # noqa: E731

            def phrase(scene: Scene, i: int) -> str:  # every held-out frame in turn
                forms = held_out(len(scene.objects))
                return fill_at_random(forms[i % len(forms)], scene, (lang,), wording)

            result[lang] = self.held_out_reading("paraphrase", phrase, held_out)
            result[lang]["pair_by_frame"] = result[lang].pop("pair_by_form")
            result[lang]["pair_sides_by_frame"] = result[lang].pop("pair_sides_by_form")
            del result[lang]["single_by_form"]
        return result

    def terse(self) -> dict[str, dict[str, Any]]:
        result = {}
        for lang in LANGUAGES:
            wording = random.Random(f"terse/{self.config.seed}/{lang}")
            held_out = lambda k: terse_forms(k, lang, "held_out")  # noqa: E731

            def phrase(scene: Scene, i: int) -> str:  # every held-out form in turn, each in every casing in turn
                forms = held_out(len(scene.objects))
                text = fill_terse(forms[i % len(forms)], scene, (lang,), wording.random() < 0.3)
                return typed(text, CASINGS[(i // len(forms)) % len(CASINGS)])

            result[lang] = self.held_out_reading("terse", phrase, held_out)
        return result

    def image_prompt(self) -> dict[str, Any]:
        rng = random.Random(f"image_prompt/{self.config.seed}")
        n = self.config.n("image_prompt")
        combos = [(shape, colour) for shape in SHAPES for colour in COLOURS]
        objects = [ShapeObject(*combos[i % len(combos)], rng.choice(SIZES)) for i in range(n)]
        sides = [FOREIGN_SIDES[i % len(FOREIGN_SIDES)] for i in range(n)]  # foreign canvases in turn
        references = {
            "renderer": [render_reference(o, seed=rng.randrange(2**31)) for o in objects],
            "foreign": [draw_object(o, side, GROUNDS[(i // len(FOREIGN_SIDES)) % len(GROUNDS)], rng)
                        for i, (o, side) in enumerate(zip(objects, sides))],  # fmt: skip
        }
        result: dict[str, Any] = {}
        for name, refs in references.items():
            prompts = [MultimodalPrompt.of(ImageSegment(r)) for r in refs]
            found = [detect(im) for im in self.generate(prompts)]
            main = [largest(f) for f in found]
            shape = [m is not None and m.shape == o.shape for m, o in zip(main, objects)]
            colour = [m is not None and m.colour == o.colour for m, o in zip(main, objects)]
            right = [a and b for a, b in zip(shape, colour)]
            result[name] = {"accuracy": _share(right), "shape": _share(shape), "colour": _share(colour), "n": n,
                            "misses": self.misses(prompts, [(o,) for o in objects], found, right)}  # fmt: skip
            result[name]["by_shape"] = {shape: _share([r for r, o in zip(right, objects) if o.shape == shape]) for shape in SHAPES}
            if name == "foreign":
                result[name]["by_canvas"] = {str(side): _share([r for r, s in zip(right, sides) if s == side]) for side in FOREIGN_SIDES}
        return result

    def run(self, benchmarks: Sequence[str] = BENCHMARKS) -> dict[str, Any]:
        """The report of `benchmarks` (all by default; `languages` needs `single` and runs it)."""
        unknown = set(benchmarks) - set(BENCHMARKS)
        if unknown:
            raise ValueError(f"unknown benchmarks {sorted(unknown)}; expected some of {', '.join(BENCHMARKS)}")
        start = time.perf_counter()
        results: dict[str, Any] = {}
        for name in BENCHMARKS:
            if name in benchmarks or (name == "single" and "languages" in benchmarks):
                self.log(f"{name} ...")
                results[name] = self.languages(results["single"]) if name == "languages" else getattr(self, name)()
        return {
            "model": self.model,
            "multifusion_version": __version__,
            "config": asdict(self.config),
            "scheduler": scheduler_name(self.pipe.scheduler),
            "seeds": {"base": self.config.seed, "rule": "image i of every benchmark and variant uses base + i"},
            "benchmarks": results,
            "elapsed_s": round(time.perf_counter() - start, 1),
        }


def format_report(report: dict[str, Any]) -> str:
    """A readable table of a report (of any subset of the benchmarks)."""
    b = report["benchmarks"]
    pct = lambda x: f"{100 * x:5.1f}%"  # noqa: E731
    lines = [f"model: {report['model']}   steps: {report['config']['steps']}   scheduler: {report.get('scheduler', '?')}   "
             f"quick: {report['config']['quick']}", ""]  # fmt: skip
    if "single" in b:
        lines.append("single (main object: right shape and colour)")
        lines += [f"  {lang}  {pct(r['accuracy'])}  (n={r['n']})" for lang, r in b["single"].items()]
    if "mcc" in b:
        lines.append("mcc (both objects, right shapes and colours)")
        lines += [f"  {name:<11}{pct(r['accuracy'])}  (n={r['n']})" for name, r in b["mcc"].items()]
    if "weights" in b:
        lines.append("weights (\"A and B\", weight on B)")
        lines += [f"  B at {w:<4} B shown {pct(r['weighted_present'])}, A shown {pct(r['other_present'])}  (n={r['n']})"
                  for w, r in b["weights"].items()]  # fmt: skip
    if "languages" in b:
        lines.append("languages (single accuracy, gap to en, cosine similarity of the encoding to the English caption)")
        for lang in LANGUAGES:
            r = b["languages"][lang]
            lines.append(f"  {lang}  {pct(r['accuracy'])}  {100 * r['gap_to_en']:+6.1f} pts  similarity {r['similarity_to_en']:.3f}")
        lines.append(f"  unrelated English captions: similarity {b['languages']['unrelated_en_baseline']:.3f}")
    if "paraphrase" in b:
        lines.append("paraphrase (held-out frames: single right; pair both right; pair both right and on their sides)")
        lines += [f"  {lang}  single {pct(r['single'])}  pair {pct(r['pair'])}  pair+sides {pct(r['pair_sides'])}  (n={r['n']} each)"
                  for lang, r in b["paraphrase"].items()]  # fmt: skip
    if "terse" in b:
        lines.append("terse (held-out tag forms: single right; pair both right; pair both right and on their sides)")
        lines += [f"  {lang}  single {pct(r['single'])}  pair {pct(r['pair'])}  pair+sides {pct(r['pair_sides'])}  (n={r['n']} each)"
                  for lang, r in b["terse"].items()]  # fmt: skip
    if "image_prompt" in b:
        lines.append("image_prompt (one reference image as the prompt: shape and colour, shape, colour)")
        for name, r in b["image_prompt"].items():
            lines.append(f"  {name:<9}{pct(r['accuracy'])}  shape {pct(r['shape'])}  colour {pct(r['colour'])}  (n={r['n']})")
        if "by_canvas" in b["image_prompt"].get("foreign", {}):
            by = b["image_prompt"]["foreign"]["by_canvas"]
            lines.append("  foreign by canvas side: " + ", ".join(f"{side} px {pct(v).strip()}" for side, v in by.items()))
        if "by_shape" in b["image_prompt"].get("foreign", {}):
            by = b["image_prompt"]["foreign"]["by_shape"]
            lines.append("  foreign by shape: " + ", ".join(f"{shape} {pct(v).strip()}" for shape, v in by.items()))
    lines.append(f"elapsed: {report['elapsed_s']} s")
    return "\n".join(lines)
