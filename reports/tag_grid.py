"""One object typed as tags in given terse forms, every shape in every colour, at eval seeds 0 and 1: the share
whose main object is right, per colour, and what the misses were drawn as. A denser look at one form than `multifusion
eval`'s `terse` benchmark, which takes its held-out forms in turn (about eleven prompts per form and seed).

    python reports/tag_grid.py MODEL_DIR LANG FORM [FORM ...]      # e.g. de "Bild: {a:tag}" "{a:tag}, bitte"

Forms are `frames.TERSE_WRAPPERS` around `{a}` or `{a:tag}`, filled by `captions.fill_terse`, lower case, no size.
"""

import json
import sys
from collections import Counter

from multifusion.evaluate import EvalConfig, Evaluator
from multifusion.pipeline import MultiFusionPipeline
from multifusion.prompt import MultimodalPrompt
from multifusion.shapes.captions import fill_terse
from multifusion.shapes.scorer import main_object
from multifusion.shapes.world import COLOURS, SHAPES, Scene, ShapeObject

SEEDS = (0, 1)


def grid(pipe: MultiFusionPipeline, lang: str, form: str) -> dict:
    objects = [ShapeObject(shape, colour, "large") for shape in SHAPES for colour in COLOURS]
    prompts = [MultimodalPrompt.of(fill_terse(form, Scene((o,)), (lang,))) for o in objects]
    right, misses = Counter(), Counter()
    for seed in SEEDS:
        images = Evaluator(pipe, EvalConfig(seed=seed), log=lambda _: None).generate(prompts)
        for o, image in zip(objects, images):
            drawn = main_object(image)
            if drawn is not None and (drawn.shape, drawn.colour) == (o.shape, o.colour):
                right[o.colour] += 1
            else:
                misses[f"{o.shape} {o.colour} -> " + (f"{drawn.shape} {drawn.colour}" if drawn else "nothing")] += 1
    n = len(objects) * len(SEEDS)
    return {"form": form, "example": fill_terse(form, Scene((objects[1],)), (lang,)), "right": sum(right.values()), "n": n,
            "right_by_colour": {c: right[c] for c in COLOURS}, "n_per_colour": len(SHAPES) * len(SEEDS),
            "misses": dict(misses.most_common())}  # fmt: skip


def main(model: str, lang: str, forms: list[str]) -> None:
    pipe = MultiFusionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    print(json.dumps({"model": model, "lang": lang, "seeds": SEEDS, "forms": [grid(pipe, lang, f) for f in forms]}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
