import sys, random, collections, torch
from multifusion import evaluate as ev
from multifusion.pipeline import MultiFusionPipeline
from multifusion.shapes.captions import caption, LANGUAGES
from multifusion.shapes.scorer import main_object
from multifusion.shapes.world import random_scene
from multifusion.prompt import MultimodalPrompt
torch.set_num_threads(2)
pipe = MultiFusionPipeline.from_pretrained(sys.argv[1]); pipe.set_progress_bar_config(disable=True)
n = int(sys.argv[2]); g = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
langs = sys.argv[4].split(",") if len(sys.argv) > 4 else LANGUAGES
e = ev.Evaluator(pipe, ev.EvalConfig(seed=1000, guidance=g), log=lambda s: None)
rng = random.Random("valsingle")
scenes = [random_scene(rng, 1) for _ in range(n)]
for lang in langs:
    ims = e.generate([MultimodalPrompt.of(caption(s, lang)) for s in scenes])
    conf = collections.Counter(); ok = 0
    for im, s in zip(ims, scenes):
        m = main_object(im); t = s.objects[0]
        good = m is not None and m.shape == t.shape and m.colour == t.colour; ok += good
        if not good: conf[(t.colour + " " + t.shape, (m.colour + " " + m.shape) if m else None)] += 1
    print(lang, f"{ok/n:.3f}", conf.most_common(6), flush=True)
