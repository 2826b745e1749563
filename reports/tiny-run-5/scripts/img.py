import sys, torch
from multifusion import MultiFusionPipeline, MultimodalPrompt, ImageSegment
from multifusion.shapes.render import render_reference
from multifusion.shapes.scorer import main_object
from multifusion.shapes.world import ShapeObject, SHAPES
pipe = MultiFusionPipeline.from_pretrained(sys.argv[1]); pipe.set_progress_bar_config(disable=True)
for size in ["small", "large"]:
  for seed in [3, 0]:
    objs = [ShapeObject(s, c, size) for s in SHAPES for c in ["green", "red", "blue"]]
    refs = [render_reference(o, seed=seed) for o in objs]
    ims = pipe([MultimodalPrompt.of(ImageSegment(r)) for r in refs], num_inference_steps=20, guidance_scale=5.0, generator=[torch.Generator().manual_seed(i % 4) for i in range(len(refs))]).images
    ok = [(m := main_object(im)) is not None and (m.shape, m.colour) == (o.shape, o.colour) for im, o in zip(ims, objs)]
    print(size, seed, sum(ok), "/", len(ok), [f"{o.colour} {o.shape}->{(m.colour + ' ' + m.shape) if (m:=main_object(im)) else None}" for im, o, k in zip(ims, objs, ok) if not k][:8])
