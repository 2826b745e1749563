"""Which side a pipeline's encoder puts each object on, read without drawing: for two-object scenes, a frame's
caption is encoded and read through the U-Net's cross-attention (`CrossAttentionReader`, the measure the refine
rounds align with), then compared with the canonical English captions of the scene, of its mirror (the objects'
sides swapped) and of either object on both sides. A frame read on its named sides reads nearest the scene; one
read by word order alone ("the first object named is on the left") reads nearest the mirror when it names the
right-hand object first.

    python -m multifusion.shapes.recipe.sides --model weights/multifusion-tiny [--n 64]

Per language it prints, for the training frame "{a} to the left of {b}" and the held-out frames that name the
right-hand object first ("{b} to the right of {a}", "on the right {b}, on the left {a}"), the share of scenes read
nearest themselves. It takes under a minute on a CPU. A reading on the named sides is what drawing them needs,
not all it needs: the U-Net must also draw both objects apart (run v37 in `reports/RUNS.md` read German "{b}
rechts von {a}" on its sides in 89 % of scenes and drew it so in 36 %). So it screens a change to the recipe,
and `multifusion eval` judges it.
"""

from __future__ import annotations

import argparse
import json
import random

import torch
import torch.nn.functional as F

from ...pipeline import MultiFusionPipeline
from ...prompt import MultimodalPrompt
from ..captions import COLOUR_FORMS, LANGUAGES, caption, decorate, fill
from ..frames import ARRANGEMENTS_TWO, HELD_OUT_TWO
from ..world import Scene, random_scene
from .config import load_config
from .refine import teacher_reader

FRAMES = {  # name -> per language, the frame (left object {a}, right object {b})
    "left of (training)": {lang: ARRANGEMENTS_TWO[lang][9].replace(":C}", "}") for lang in LANGUAGES},
    "right of (held out)": {lang: HELD_OUT_TWO[lang][1] for lang in LANGUAGES},
    "right first (held out)": {lang: HELD_OUT_TWO[lang][0] for lang in LANGUAGES},
}


def per_sample_distance(reader, states: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) how differently the reader's U-Net reads each of `states` and its `target` (mean over layers)."""
    return torch.stack([F.mse_loss(got, want, reduction="none").mean(dim=(1, 2)) / want.var()
                        for got, want in zip(reader(states), reader(target))]).mean(dim=0)  # fmt: skip


@torch.no_grad()
def read_sides(pipe: MultiFusionPipeline, config: dict, n: int = 64, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per frame and language, the share of `n` two-object scenes whose caption (phrased as `multifusion eval`
    phrases held-out frames: sizes, colour forms, casing and punctuation at random) reads nearer the scene's
    canonical English caption than that of its mirror and those of either object on both sides (what a model
    draws when one object's words leak onto the other)."""
    reader = teacher_reader(pipe, config)
    rng = random.Random(f"sides/{seed}")
    scenes = [random_scene(rng, 2) for _ in range(n)]
    encode = lambda texts: pipe.encode([MultimodalPrompt.of(t) for t in texts]).embeds  # noqa: E731
    rivals = [lambda s: s, lambda s: Scene(s.objects[::-1]),  # the scene first, then its mirror
              lambda s: Scene(s.objects[:1] * 2), lambda s: Scene(s.objects[1:] * 2)]  # fmt: skip
    targets = [encode([caption(rival(s), "en") for s in scenes]) for rival in rivals]
    shares = {}
    for name, frames in FRAMES.items():
        shares[name] = {}
        for lang in LANGUAGES:
            wording = random.Random(f"sides/{seed}/{lang}")

            def phrase(scene: Scene) -> str:  # as eval's paraphrase benchmark: size, colour form, casing, punctuation
                text = fill(frames[lang], scene, (lang,), wording.random() < 0.5, wording.choice(COLOUR_FORMS))
                return decorate(text, wording)

            read = encode([phrase(s) for s in scenes])
            distances = torch.stack([per_sample_distance(reader, read, target) for target in targets])  # (rivals, n)
            shares[name][lang] = round((distances.argmin(dim=0) == 0).float().mean().item(), 4)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="weights/multifusion-tiny", help="pipeline directory")
    parser.add_argument("--config", default="tiny", help="the recipe config (its seed and noise schedule)")
    parser.add_argument("--n", type=int, default=64, help="two-object scenes per frame and language")
    args = parser.parse_args()
    pipe = MultiFusionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    shares = read_sides(pipe, load_config(args.config), args.n)
    print(json.dumps({"model": args.model, "n": args.n, "read_on_their_sides": shares}, indent=1))


if __name__ == "__main__":
    main()
