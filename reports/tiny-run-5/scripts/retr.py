import sys, torch, itertools
from multifusion import MultiFusionPipeline, MultimodalPrompt, ImageSegment
from multifusion.shapes.render import render_reference
from multifusion.shapes.captions import caption
from multifusion.shapes.world import ShapeObject, SHAPES, COLOURS, Scene
pipe = MultiFusionPipeline.from_pretrained(sys.argv[1]); pipe.set_progress_bar_config(disable=True)
combos = list(itertools.product(SHAPES, COLOURS))
caps = [MultimodalPrompt.of(caption(Scene((ShapeObject(s, c, "small"),)), "en")) for s, c in combos]
with torch.no_grad():
    ce = pipe.encode(caps); mask = None
    def pool(enc):
        e = enc.embeds; return torch.nn.functional.normalize(e.mean(1), dim=-1)
    cp = pool(ce)
    right = shape_right = 0; n = 0
    for size in ["small", "large"]:
        for seed in range(2):
            imgs = [MultimodalPrompt.of(ImageSegment(render_reference(ShapeObject(s, c, size), seed=seed))) for s, c in combos]
            ip = pool(pipe.encode(imgs))
            best = (ip @ cp.T).argmax(1)
            for i, b in enumerate(best.tolist()):
                n += 1; right += b == i; shape_right += combos[b][0] == combos[i][0]
print(sys.argv[1], "nearest caption right", right / n, "shape right", shape_right / n)
