import sys, tempfile, torch
from pathlib import Path
from multifusion import MultiFusionPipeline
from multifusion.runtime import Runtime, RuntimeOptions
from multifusion.shapes.scorer import detect
from ui import handlers
from ui.examples import EXAMPLES_DIR, load_examples
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
pipe = MultiFusionPipeline.from_pretrained(sys.argv[1]); pipe.set_progress_bar_config(disable=True)
studio = handlers.Studio(Runtime(pipe, RuntimeOptions(device="cpu")), "x", work_dir=Path(tempfile.mkdtemp()))
studio.trusted_dirs = (EXAMPLES_DIR,)
for ex in load_examples():
    prompt = handlers.composition_to_prompt(studio, ex["composition"])
    ok = []
    for seed in range(8):
        image = handlers.generate(studio, prompt, handlers.settings_from({"seed": seed})).images[0]
        found = {(d.shape, d.colour) for d in detect(image)}
        good = all(tuple(w) in found for w in ex["expect"]["shows"]) and not any(tuple(u) in found for u in ex["expect"].get("hides", []))
        ok.append(int(good))
    print(f"{ex['label']:55s} seed {ex['seed']}: {'PASS' if ok[ex['seed']] else 'fail'}  seeds0-7 {ok} ({sum(ok)}/8)", flush=True)
