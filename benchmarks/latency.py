"""The tiny model end to end on this machine, each figure beside a baseline from the same run.

- one image at 25 steps and a batch of 8 (`RuntimeOptions(batch_images=True)`): ours (`Runtime.generate`) against diffusers' `StableDiffusionPipeline`
  on the same U-Net, VAE, scheduler and embeddings;
- peak resident memory of a process that loads the model and makes one image: ours against that diffusers
  pipeline (each in its own subprocess);
- app cold start: `python app.py` until the page is served, against a bare `gr.Blocks()` app.

    python benchmarks/latency.py [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch

from common import device_name, median, report, tiny_runtime, timed
from multifusion import MultimodalPrompt

ROOT = Path(__file__).resolve().parents[1]


def diffusers_twin(runtime):
    """diffusers' StableDiffusionPipeline on the runtime's own U-Net, VAE and scheduler."""
    import transformers

    transformers.logging.set_verbosity_error()
    from diffusers import StableDiffusionPipeline

    pipe = runtime.pipe
    sd = StableDiffusionPipeline(vae=pipe.vae, text_encoder=None, tokenizer=None, unet=pipe.unet, scheduler=pipe.scheduler,
                                 safety_checker=None, feature_extractor=None, requires_safety_checker=False)  # fmt: skip
    sd.set_progress_bar_config(disable=True)
    return sd


def one_image(kind: str, model: str | None) -> None:
    """Child process: load, make one image, print peak RSS in MiB."""
    from multifusion.runtime import GenerationSettings

    torch.set_grad_enabled(False)
    runtime, _ = tiny_runtime(model)
    if kind == "ours":
        runtime.generate("a red circle", GenerationSettings(steps=25))
    else:
        encoding = runtime.pipe.encode([MultimodalPrompt.of("a red circle")])
        negative = runtime.pipe.encode([MultimodalPrompt()])
        diffusers_twin(runtime)(prompt_embeds=encoding.embeds, negative_prompt_embeds=negative.embeds, num_inference_steps=25,
                                guidance_scale=5.0, generator=torch.Generator().manual_seed(0))  # fmt: skip
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_rss(kind: str, model: str | None) -> float:
    extra = ["--model", model] if model else []
    out = subprocess.run([sys.executable, __file__, "--child", kind, *extra], capture_output=True, text=True, check=True,
                         cwd=ROOT / "benchmarks")  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cold_start(command: list[str]) -> float:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < 120:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{command} did not serve within 120 s")
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--model", default=None, help="pipeline directory (default: weights/multifusion-tiny, else the random test pipeline)")
    parser.add_argument("--child", choices=["ours", "diffusers"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return one_image(args.child, args.model)

    from multifusion.runtime import GenerationSettings, Runtime

    torch.set_grad_enabled(False)
    runtime, model = tiny_runtime(args.model)
    sd = diffusers_twin(runtime)
    prompt = MultimodalPrompt.of("a red circle")
    encoding, negative = runtime.encode(prompt), runtime.encode(MultimodalPrompt())

    batched = Runtime(runtime.pipe, replace(runtime.options, batch_images=True))  # one call for n images, as diffusers

    def ours(n: int):
        return lambda: batched.generate(prompt, GenerationSettings(steps=25, num_images=n))

    def theirs(n: int):
        return lambda: sd(prompt_embeds=encoding.embeds, negative_prompt_embeds=negative.embeds, num_inference_steps=25,
                          guidance_scale=5.0, num_images_per_prompt=n, generator=[torch.Generator().manual_seed(i) for i in range(n)])  # fmt: skip

    figures: dict = {"model": model, "device": device_name(), "repeats": args.repeats}
    for n in (1, 8):
        ours(n)(), theirs(n)()  # warm-up
        pairs = [(timed(ours(n), 1)[0], timed(theirs(n), 1)[0]) for _ in range(args.repeats)]
        figures[f"batch{n}_ours_s"] = median([a for a, _ in pairs])
        figures[f"batch{n}_diffusers_s"] = median([b for _, b in pairs])
        figures[f"batch{n}_ratio"] = median([a / b for a, b in pairs])
    figures["peak_rss_ours_mib"] = peak_rss("ours", args.model)
    figures["peak_rss_diffusers_mib"] = peak_rss("diffusers", args.model)
    app = [cold_start([sys.executable, "app.py"]) for _ in range(3)]
    bare_app = "import gradio as gr\nwith gr.Blocks() as demo:\n    gr.Markdown('hello')\ndemo.launch()"
    bare = [cold_start([sys.executable, "-c", bare_app]) for _ in range(3)]
    figures["app_cold_start_s"], figures["bare_gradio_cold_start_s"] = median(app), median(bare)

    report([
        ("model", model), ("device", figures["device"]),
        ("1 image, 25 steps: ours / diffusers (s)", f"{figures['batch1_ours_s']:.3f} / {figures['batch1_diffusers_s']:.3f}  ratio {figures['batch1_ratio']:.3f}"),
        ("8 images, 25 steps: ours / diffusers (s)", f"{figures['batch8_ours_s']:.3f} / {figures['batch8_diffusers_s']:.3f}  ratio {figures['batch8_ratio']:.3f}"),
        ("peak RSS, load + 1 image: ours / diffusers (MiB)", f"{figures['peak_rss_ours_mib']:.0f} / {figures['peak_rss_diffusers_mib']:.0f}"),
        ("cold start to served page: app.py / bare gr.Blocks (s)", f"{figures['app_cold_start_s']:.2f} / {figures['bare_gradio_cold_start_s']:.2f}"),
    ], figures, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
