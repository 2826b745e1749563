"""Benchmarks on the shapes world (design §7): generate with fixed seeds, read the images with the scorer.

- single: one object per prompt, per language: share of images whose main object has the right shape and colour.
- mcc: two objects (MCC-250 protocol): share of images with both objects in the right colours (and shapes), for
  text-only, multimodal (each object given as a reference image) and mixed prompts.
- weights: "A and B" with B's segment at weight 0, 1 and 2.5: share of images showing B (and A).
- languages: per-language `single` accuracy, its gap to English, and the cosine similarity of each translation's
  pooled encoding (`encoder.mean_pool`) to its English original, with unrelated English captions as baseline.
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
from .prompt import ImageSegment, MultimodalPrompt, TextSegment
from .shapes.captions import LANGUAGES, caption, noun_phrase
from .shapes.render import render_reference
from .shapes.scorer import detect, main_object
from .shapes.world import Scene, ShapeObject, random_scene

WEIGHTS = (0.0, 1.0, 2.5)
SAMPLE_SIZES = {  # scenes per language (single), per variant (mcc), per weight (weights); captions (similarity)
    "full": {"single": 32, "mcc": 32, "weights": 24, "similarity": 64},
    "quick": {"single": 8, "mcc": 8, "weights": 8, "similarity": 16},
}


@dataclass(frozen=True)
class EvalConfig:
    """Sample sizes and generation settings. `quick` shrinks every benchmark for a fast look."""

    quick: bool = False
    steps: int = 25
    guidance: float = 5.0
    seed: int = 0
    batch_size: int = 8

    def n(self, benchmark: str) -> int:
        """Sample size of `benchmark` (single, mcc, weights, similarity)."""
        return SAMPLE_SIZES["quick" if self.quick else "full"][benchmark]


def _has(detections: Sequence, obj: ShapeObject) -> bool:
    return any(d.shape == obj.shape and d.colour == obj.colour for d in detections)


def _main_object_right(image: Image.Image, obj: ShapeObject) -> bool:
    main = main_object(image)
    return main is not None and main.shape == obj.shape and main.colour == obj.colour


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

    def generate(self, prompts: list[MultimodalPrompt]) -> list[Image.Image]:
        """Images for `prompts`; image i is seeded `seed + i` in every benchmark, so variants are paired."""
        seeds = [self.config.seed + i for i in range(len(prompts))]
        images: list[Image.Image] = []
        for start in range(0, len(prompts), self.config.batch_size):
            chunk = prompts[start : start + self.config.batch_size]
            generators = [torch.Generator().manual_seed(s) for s in seeds[start : start + len(chunk)]]
            out = self.pipe(chunk, num_inference_steps=self.config.steps, guidance_scale=self.config.guidance, generator=generators)
            images.extend(out.images)
        return images

    def single(self) -> dict[str, dict[str, float]]:
        rng = random.Random(f"single/{self.config.seed}")
        scenes = [random_scene(rng, 1) for _ in range(self.config.n("single"))]
        result = {}
        for lang in LANGUAGES:
            images = self.generate([MultimodalPrompt.of(caption(s, lang)) for s in scenes])
            right = [_main_object_right(im, s.objects[0]) for im, s in zip(images, scenes)]
            result[lang] = {"accuracy": sum(right) / len(right), "n": len(right)}
        return result

    def mcc(self) -> dict[str, dict[str, float]]:
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
            images = self.generate([build(s, r) for s, r in zip(scenes, refs)])
            right = [all(_has(detect(im), o) for o in s.objects) for im, s in zip(images, scenes)]
            result[name] = {"accuracy": sum(right) / len(right), "n": len(right)}
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
                "weighted_present": sum(_has(d, s.objects[1]) for d, s in zip(found, scenes)) / len(scenes),
                "other_present": sum(_has(d, s.objects[0]) for d, s in zip(found, scenes)) / len(scenes),
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

    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.log("single ...")
        single = self.single()
        self.log("mcc ...")
        mcc = self.mcc()
        self.log("weights ...")
        weights = self.weights()
        self.log("languages ...")
        languages = self.languages(single)
        return {
            "model": self.model,
            "multifusion_version": __version__,
            "config": asdict(self.config),
            "seeds": {"base": self.config.seed, "rule": "image i of every benchmark and variant uses base + i"},
            "benchmarks": {"single": single, "mcc": mcc, "weights": weights, "languages": languages},
            "elapsed_s": round(time.perf_counter() - start, 1),
        }


def format_report(report: dict[str, Any]) -> str:
    """A readable table of a report."""
    b = report["benchmarks"]
    pct = lambda x: f"{100 * x:5.1f}%"  # noqa: E731
    lines = [f"model: {report['model']}   steps: {report['config']['steps']}   quick: {report['config']['quick']}", ""]
    lines.append("single (main object: right shape and colour)")
    lines += [f"  {lang}  {pct(r['accuracy'])}  (n={r['n']})" for lang, r in b["single"].items()]
    lines.append("mcc (both objects, right shapes and colours)")
    lines += [f"  {name:<11}{pct(r['accuracy'])}  (n={r['n']})" for name, r in b["mcc"].items()]
    lines.append("weights (\"A and B\", weight on B)")
    lines += [
        f"  B at {w:<4} B shown {pct(r['weighted_present'])}, A shown {pct(r['other_present'])}  (n={r['n']})"
        for w, r in b["weights"].items()
    ]
    lines.append("languages (single accuracy, gap to en, cosine similarity of the encoding to the English caption)")
    for lang in LANGUAGES:
        r = b["languages"][lang]
        lines.append(f"  {lang}  {pct(r['accuracy'])}  {100 * r['gap_to_en']:+6.1f} pts  similarity {r['similarity_to_en']:.3f}")
    lines.append(f"  unrelated English captions: similarity {b['languages']['unrelated_en_baseline']:.3f}")
    lines.append(f"elapsed: {report['elapsed_s']} s")
    return "\n".join(lines)
