"""Which side a pipeline's encoder puts each object on, read without drawing: for two-object scenes, a frame's
caption is encoded and read through the U-Net's cross-attention (`CrossAttentionReader`, the measure the refine
rounds align with), then compared with the canonical English captions of the scene, of its mirror (the objects'
sides swapped) and of either object on both sides. A frame read on its named sides reads nearest the scene; one
read by word order alone ("the first object named is on the left") reads nearest the mirror when it names the
right-hand object first.

    python -m multifusion.shapes.recipe.sides --model weights/multifusion-tiny [--n 64] [--every-frame]

Per language it prints, for the training frame "{a} to the left of {b}" and the held-out frames that name the
right-hand object first ("{b} to the right of {a}", "on the right {b}, on the left {a}"), the shares of scenes read
nearest themselves, their mirror, and either object twice (`read_nearest`), and how far the readings are, the
median over scenes of the distance to the scene and to the nearer of the scene and its mirror (`median_distance`;
the unit is the variance of the scene's readings; two random two-object scenes read a median 1.0 apart on v25).
It takes under a minute on a CPU. `--every-frame` reads all five held-out two-object frames and each of the 13
arrangements trained bare: on v25 every arrangement reads nearest its scene in every language, 0.05-0.13 from it,
and of the held-out frames only "{b} to the right of {a}" reads far from its scene (outside English: as its mirror).

A reading on the named sides is what drawing them needs, not all it needs: the reading must also be near one
arrangement of the two objects, not between the scene and its mirror. Run v37 (`reports/RUNS.md`) read German
"{b} rechts von {a}" nearest its scene in 92 % of scenes but 0.156 from it (the training frame: 0.053), and drew
both objects in 36 %; v25 reads it as its mirror, 0.098 away, and draws both in 57 %. Over v25, v37 and v38 in five
languages the distance to the nearer of scene and mirror ranks with the share of held-out relational prompts
drawn with both objects (Spearman -0.77, 15 pairs). So it screens a change to the recipe, and `multifusion eval`
judges it.
"""

from __future__ import annotations

import argparse
import json
import random

import torch

from ...pipeline import MultiFusionPipeline
from ...prompt import MultimodalPrompt
from ..captions import LANGUAGES, caption, fill_at_random
from ..frames import ARRANGEMENTS_TWO, HELD_OUT_TWO, has_held_out_structure
from ..world import Scene, random_scene
from .config import load_config
from .refine import teacher_reader


def training_frame(i: int) -> dict[str, str]:
    """Per language, two-object training arrangement `i` as a frame (left object {a}, right object {b})."""
    return {lang: ARRANGEMENTS_TWO[lang][i].replace(":C}", "}") for lang in LANGUAGES}


def held_out_frame(i: int) -> dict[str, str]:
    """Per language, held-out two-object frame `i` (left object {a}, right object {b})."""
    return {lang: HELD_OUT_TWO[lang][i] for lang in LANGUAGES}


FRAMES = {  # name -> per language, the frame (left object {a}, right object {b})
    "left of (training)": training_frame(9),
    "right of (held out)": held_out_frame(1),
    "right first (held out)": held_out_frame(0),
}
EVERY_FRAME = {  # `--every-frame`: each held-out frame and each arrangement trained bare, named by its English form
    **{f"{frame['en']} (held out)": frame for frame in map(held_out_frame, range(len(HELD_OUT_TWO["en"])))},
    **{f"{frame['en']} (training)": frame for frame in map(training_frame, range(len(ARRANGEMENTS_TWO["en"])))
       if not has_held_out_structure(frame["en"], "en")},
}


RIVALS = {  # what a caption of the scene may be read as; the scene first
    "scene": lambda s: s,
    "mirror": lambda s: Scene(s.objects[::-1]),
    "left object twice": lambda s: Scene(s.objects[:1] * 2),
    "right object twice": lambda s: Scene(s.objects[1:] * 2),
}


@torch.no_grad()
def read_sides(pipe: MultiFusionPipeline, config: dict, n: int = 64, seed: int = 0,
               frames: dict[str, dict[str, str]] = FRAMES) -> tuple[dict, dict]:
    """Per frame and language, the shares of `n` two-object scenes whose caption (phrased as `multifusion eval`
    phrases held-out frames: sizes, colour forms, casing and punctuation at random) reads nearest the canonical
    English caption of the scene, of its mirror, and of either object on both sides (what a model draws when one
    object's words leak onto the other); and the median distance to the scene and to the nearer of the scene and
    its mirror. Distances are squared differences of each `attn2` layer's outputs, in units of the variance of the
    scene's own readings, averaged over layers."""
    reader = teacher_reader(pipe, config)
    rng = random.Random(f"sides/{seed}")
    scenes = [random_scene(rng, 2) for _ in range(n)]
    encode = lambda texts: pipe.encode([MultimodalPrompt.of(t) for t in texts]).embeds  # noqa: E731
    wanted = [reader(encode([caption(rival(s), "en") for s in scenes])) for rival in RIVALS.values()]
    scales = [layer.var() for layer in wanted[0]]
    shares, distances = {}, {}
    for name, frame in frames.items():
        shares[name], distances[name] = {}, {}
        for lang in LANGUAGES:
            wording = random.Random(f"sides/{seed}/{lang}")  # phrased as eval's paraphrase benchmark phrases
            got = reader(encode([fill_at_random(frame[lang], s, (lang,), wording) for s in scenes]))
            apart = torch.stack([reader.apart(got, rival, scales) for rival in wanted])  # (rivals, n)
            nearest = apart.argmin(dim=0)  # (n,) index into RIVALS
            shares[name][lang] = {r: round((nearest == i).float().mean().item(), 4) for i, r in enumerate(RIVALS)}
            distances[name][lang] = {"scene": round(apart[0].median().item(), 4),
                                     "scene or mirror": round(apart[:2].amin(dim=0).median().item(), 4)}  # fmt: skip
    return shares, distances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="weights/multifusion-tiny", help="pipeline directory")
    parser.add_argument("--config", default="tiny", help="the recipe config (its seed and noise schedule)")
    parser.add_argument("--n", type=int, default=64, help="two-object scenes per frame and language")
    parser.add_argument("--every-frame", action="store_true",
                        help="read every two-object training arrangement and held-out frame, not only the three")
    args = parser.parse_args()
    pipe = MultiFusionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    frames = EVERY_FRAME if args.every_frame else FRAMES
    shares, distances = read_sides(pipe, load_config(args.config), args.n, frames=frames)
    print(json.dumps({"model": args.model, "n": args.n, "read_nearest": shares, "median_distance": distances}, indent=1))


if __name__ == "__main__":
    main()
