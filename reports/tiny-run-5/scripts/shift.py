import sys, torch, numpy as np
from pathlib import Path
from multifusion.train.probe import load_stage2
from multifusion.train.config import load_config
from multifusion.train.data import schedule
from multifusion.processor import layout_prompts
from multifusion.prompt import MultimodalPrompt
from multifusion.shapes.captions import caption
from multifusion.shapes.world import Scene, ShapeObject, BACKGROUND, COLOURS
from multifusion.shapes.render import render_scene
from multifusion.shapes.scorer import main_object
from diffusers import StableDiffusionPipeline, DPMSolverMultistepScheduler, DDIMScheduler
torch.set_num_threads(2)
out = Path(sys.argv[1]); config = load_config("tiny")
unet, te, vae, tok = load_stage2(config, out)
sched = DPMSolverMultistepScheduler(steps_offset=1, **schedule(config)) if sys.argv[2] == "dpm" else DDIMScheduler(steps_offset=1, **schedule(config))
pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
pipe.set_progress_bar_config(disable=True)
steps = int(sys.argv[3])
def objcol(im):
    a = np.asarray(im).astype(float); mask = np.abs(a - BACKGROUND).sum(-1) > 150
    return np.median(a[mask], 0) if mask.sum() > 5 else np.full(3, np.nan)
shapes = ["circle","square","star","heart"]*3
for g in [1.0, 5.0]:
    row = []
    acc = 0
    for c in COLOURS:
        scenes = [Scene((ShapeObject(s, c, "large"),)) for s in shapes]
        truth = np.nanmean([objcol(render_scene(s, seed=i, canvas=64)) for i, s in enumerate(scenes)], 0)
        prompts = [MultimodalPrompt.of(caption(s, "en")) for s in scenes] + [MultimodalPrompt()]
        ids = layout_prompts(prompts, tok, image_tokens=1, max_length=40).input_ids
        with torch.no_grad(): emb = te(ids).last_hidden_state
        ims = pipe(prompt_embeds=emb[:-1], negative_prompt_embeds=emb[-1:].expand(len(scenes), -1, -1), guidance_scale=g, num_inference_steps=steps,
                   generator=[torch.Generator().manual_seed(i) for i in range(len(scenes))]).images
        got = np.nanmean([objcol(im) for im in ims], 0)
        acc += sum(1 for im in ims if (m := main_object(im)) and m.colour == c)
        row.append(f"{c}:{(got-truth).round().astype(int).tolist()}")
    print(sys.argv[2], steps, "g", g, "colour acc", round(acc / (len(shapes)*len(COLOURS)), 3), " ".join(row), flush=True)
