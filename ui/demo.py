"""`build_demo(studio)`: the MultiFusion Studio Gradio app. Event functions here only translate between Gradio
and the plain handlers in `handlers.py`; user mistakes become `gr.Error` messages and the server keeps serving.
"""

from __future__ import annotations

import functools
import logging
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image, UnidentifiedImageError

from multifusion.errors import MultiFusionError
from multifusion.prompt import LANGUAGES, MultimodalPrompt
from multifusion.runtime import MAX_SEED

from . import handlers
from .composer import composer, with_thumbnails
from .examples import EXAMPLES_DIR, load_examples
from .handlers import Cancelled, Studio

LOG = logging.getLogger("multifusion.studio")
GPU = "multifusion-gpu"  # every event that runs the pipeline shares one concurrency group: one at a time
QUEUE_SIZE = 16
# System fonts only: the page must work offline, so nothing is fetched from a font CDN.
THEME = gr.themes.Soft(
    primary_hue="violet", secondary_hue="amber", font=["system-ui", "Segoe UI", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)
CSS = """
#mf-title h1 { margin-bottom: 0; }
#mf-model { font-size: 0.9em; opacity: 0.85; }
#mf-generate { min-height: 48px; font-size: 1.05em; }
"""


def user_errors(fn: Callable) -> Callable:
    """Turn project errors into `gr.Error` (shown to the user) and a cancel into a notice. Any other exception is
    a bug: the client gets a short message with an id, and the server log gets the id with the traceback, so no
    internals (object reprs, addresses, paths) ever reach a client."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MultiFusionError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Cancelled:
            gr.Info("Generation cancelled.")
            return gr.skip()
        except gr.Error:
            raise
        except Exception:
            incident = uuid.uuid4().hex[:8]
            LOG.exception("internal error %s in %s", incident, fn.__name__)
            raise gr.Error(f"Something went wrong on the server (error id {incident}); the request changed nothing.",
                           print_exception=False) from None  # fmt: skip

    return wrapper


def open_png(file: Any) -> Image.Image:
    """A dropped file as an image; anything else is the user's mistake, not a crash."""
    try:
        return Image.open(file)
    except (OSError, UnidentifiedImageError):
        raise gr.Error("That file is not an image.", print_exception=False) from None


def build_demo(
    studio: Studio, zero_gpu: Callable[[Callable], Callable] = lambda f: f, queue_size: int = QUEUE_SIZE
) -> gr.Blocks:
    """The whole app for one loaded model.

    `zero_gpu` wraps GPU work (e.g. `spaces.GPU` on ZeroGPU Spaces); beyond `queue_size` waiting requests, new
    ones are turned away with Gradio's "Queue is full" message instead of waiting without end.
    """
    examples = load_examples()
    # Images may come from Gradio's upload folder or the bundled examples; any other server path is refused.
    studio.trusted_dirs = tuple(dict.fromkeys((*studio.trusted_dirs, EXAMPLES_DIR, Path(get_upload_folder()))))
    pipe = studio.runtime.pipe
    multiple = pipe.size_multiple
    default_side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    run = zero_gpu(handlers.generate)

    with gr.Blocks(title="MultiFusion Studio") as demo:
        gr.Markdown("# MultiFusion Studio\nCompose prompts from text in five languages and images, with a weight per segment.",
                    elem_id="mf-title")  # fmt: skip
        gr.Markdown(f"**Model:** `{studio.model_name}`", elem_id="mf-model")
        last_seed = gr.State(None)

        with gr.Tab("Generate"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=5):
                    composition = composer(examples[0]["composition"])
                    negative = gr.Textbox(label="Negative prompt", placeholder="what to steer away from (optional)", lines=1)
                    example_list = gr.Dataset(components=[gr.Textbox(visible=False)], samples=[[e["label"]] for e in examples],
                                              label="Examples", type="index", samples_per_page=12)  # fmt: skip
                    restore_file = gr.File(label="Restore: drop a PNG made here", file_types=[".png"], height=140)
                with gr.Column(scale=4):
                    gallery = gr.Gallery(label="Results", elem_id="mf-gallery", columns=2, height=420, object_fit="contain", buttons=["download", "fullscreen"])
                    with gr.Row():
                        generate_btn = gr.Button("Generate", variant="primary", elem_id="mf-generate", scale=3)
                        cancel_btn = gr.Button("Cancel", variant="secondary", scale=1)
                    with gr.Accordion("Settings", open=True):
                        seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=MAX_SEED)
                        with gr.Row():
                            randomise = gr.Button("Random seed", size="sm")
                            reuse = gr.Button("Reuse last seed", size="sm")
                        steps = gr.Slider(1, 100, value=studio.runtime.default_steps, step=1, label="Steps",
                                          info=f"{studio.runtime.scheduler_name}; the model's default is {studio.runtime.default_steps}")  # fmt: skip
                        guidance = gr.Slider(0, 15, value=5.0, step=0.5, label="Guidance")
                        with gr.Row():
                            max_side = studio.runtime.max_side  # the model's limit, not a fixed 1024
                            width = gr.Slider(multiple, max_side, value=default_side, step=multiple, label="Width")
                            height = gr.Slider(multiple, max_side, value=default_side, step=multiple, label="Height")
                        num_images = gr.Slider(1, 8, value=2, step=1, label="Images per run")
                        with gr.Row():
                            manipulate = gr.Radio(["both", "encoder", "unet"], value="both", label="Weights act in")
                            balance = gr.Checkbox(value=True, label="Balance text against images")
                    with gr.Accordion("Prompt and settings of the first image", open=False):
                        record = gr.JSON(show_label=False, elem_id="mf-record")

        with gr.Tab("Compare languages"):
            gr.Markdown("One prompt in up to five languages, the same seed for each. The caption gives each "
                        "language's encoding similarity to the first one filled in.")  # fmt: skip
            with gr.Row():
                lang_boxes = {
                    lang: gr.Textbox(label=lang, value=text, lines=2)
                    for lang, text in zip(LANGUAGES, ("a blue triangle and a green heart", "ein blaues Dreieck und ein grünes Herz",
                                                      "un triangle bleu et un cœur vert", "un triangolo blu e un cuore verde",
                                                      "un triángulo azul y un corazón verde"))  # fmt: skip
                }
            compare_btn = gr.Button("Compare", variant="primary")
            compare_gallery = gr.Gallery(label="Languages side by side", columns=5, height=300, object_fit="contain", format="png")

        with gr.Tab("Weight sweep"):
            gr.Markdown("One segment of the Generate tab's composition, its weight swept over a range (same seed).")
            with gr.Row():
                sweep_segment = gr.Number(label="Segment (1 = first card)", value=1, precision=0, minimum=1)
                sweep_low = gr.Slider(0, 5, value=0, step=0.05, label="From weight")
                sweep_high = gr.Slider(0, 5, value=2.5, step=0.05, label="To weight")
                sweep_count = gr.Slider(2, 9, value=5, step=1, label="Steps along the sweep")
            sweep_btn = gr.Button("Sweep", variant="primary")
            sweep_gallery = gr.Gallery(label="Weight sweep", columns=5, height=260, object_fit="contain", format="png")

        with gr.Tab("PNG info"):
            gr.Markdown("Drop a PNG to read how it was made, without restoring it: from this studio, or any tool "
                        "that writes AUTOMATIC1111's `parameters`.")  # fmt: skip
            info_file = gr.File(label="PNG to read", file_types=[".png"], height=140)
            info_text = gr.Textbox(label="Parameters", lines=4, interactive=False, buttons=["copy"], elem_id="mf-png-info")
            info_record = gr.JSON(label="MultiFusion record")

        settings_inputs = [steps, guidance, seed, width, height, num_images, negative, manipulate, balance]

        def settings_of(steps, guidance, seed, width, height, num_images, negative, manipulate, balance) -> Any:
            return handlers.settings_from({
                "steps": steps, "guidance": guidance, "seed": seed, "width": width, "height": height,
                "num_images": num_images, "negative": negative, "manipulate": manipulate, "auto_balance": balance,
            })  # fmt: skip

        @user_errors
        def on_generate(value, steps, guidance, seed, width, height, num_images, negative, manipulate, balance,
                        request: gr.Request, progress=gr.Progress()):  # fmt: skip
            prompt = handlers.composition_to_prompt(studio, value)
            settings = settings_of(steps, guidance, seed, width, height, num_images, negative, manipulate, balance)
            progress((0, settings.steps * settings.num_images), desc="Denoising", unit="steps")
            result = run(studio, prompt, settings, on_step=denoising(progress), cancel=fresh_cancel(request))
            return result.gallery(), result.records[0], settings.seed

        def fresh_cancel(request: gr.Request | None):
            """This session's cancel flag, cleared as its new job starts."""
            cancel = studio.cancel_flag(request.session_hash if request else "local")
            cancel.clear()
            return cancel

        def denoising(progress: gr.Progress) -> Callable[[int, int], None]:
            return lambda i, n: progress((i, n), desc="Denoising", unit="steps")

        def on_cancel(request: gr.Request):
            studio.cancel_flag(request.session_hash if request else "local").set()

        generate_btn.click(on_generate, [composition, *settings_inputs], [gallery, record, last_seed],
                                       concurrency_id=GPU, api_visibility="private")  # fmt: skip
        cancel_btn.click(on_cancel, None, None, queue=False, api_visibility="private")
        randomise.click(lambda: random.randint(0, MAX_SEED), None, seed, queue=False, api_visibility="private")
        reuse.click(lambda last, current: current if last is None else last, [last_seed, seed], seed, queue=False,
                    api_visibility="private")  # fmt: skip

        def on_example(index: int):
            example = examples[index]
            return example["composition"], example.get("seed", 0)

        example_list.click(on_example, example_list, [composition, seed], queue=False, api_visibility="private")

        @user_errors
        def on_restore(file):
            if file is None:
                return gr.skip()
            value, settings, missing = handlers.restore(studio, open_png(file))
            negative_text = handlers.negative_as_text(settings.get("negative"))
            not_restored = [f"the images of {', '.join(missing)} (not on this server any more: add them again)"] if missing else []
            if negative_text is None:
                not_restored.append("the negative prompt (it holds images; the box takes text)")
            if not_restored:
                gr.Warning("Restored everything except " + "; ".join(not_restored) + ".")
            else:
                gr.Info("Restored the composition, the negative prompt and every setting.")
            return (with_thumbnails(value), settings.get("steps") or studio.runtime.default_steps, settings.get("guidance", 5.0),
                    settings["seed"], settings.get("width") or default_side, settings.get("height") or default_side, 1,
                    gr.skip() if negative_text is None else negative_text, settings.get("manipulate", "both"),
                    settings.get("auto_balance", True))  # fmt: skip

        @user_errors
        def on_png_info(file):
            if file is None:
                return gr.skip()
            return handlers.png_info(open_png(file))

        info_file.upload(on_png_info, info_file, [info_text, info_record], api_visibility="private")

        restore_file.upload(on_restore, restore_file, [composition, steps, guidance, seed, width, height, num_images,
                                                       negative, manipulate, balance], api_visibility="private")  # fmt: skip

        @user_errors
        def on_compare(en, de, fr, it, es, steps, guidance, seed, width, height, num_images, negative, manipulate, balance,
                       request: gr.Request, progress=gr.Progress()):  # fmt: skip
            texts = dict(zip(LANGUAGES, (en, de, fr, it, es)))
            settings = settings_of(steps, guidance, seed, width, height, num_images, negative, manipulate, balance)
            result, _ = handlers.compare_languages(studio, texts, settings, denoising(progress), fresh_cancel(request))
            return result.gallery()

        compare_btn.click(on_compare, [*lang_boxes.values(), *settings_inputs], compare_gallery, concurrency_id=GPU,
                          api_visibility="private")  # fmt: skip

        @user_errors
        def on_sweep(value, index, low, high, count, steps, guidance, seed, width, height, num_images, negative, manipulate,
                     balance, request: gr.Request, progress=gr.Progress()):  # fmt: skip
            prompt = handlers.composition_to_prompt(studio, value)
            settings = settings_of(steps, guidance, seed, width, height, num_images, negative, manipulate, balance)
            return handlers.weight_sweep(studio, prompt, int(index or 0), float(low), float(high), int(count), settings,
                                         denoising(progress), fresh_cancel(request)).gallery()  # fmt: skip

        sweep_btn.click(on_sweep, [composition, sweep_segment, sweep_low, sweep_high, sweep_count, *settings_inputs],
                        sweep_gallery, concurrency_id=GPU, api_visibility="private")  # fmt: skip

        @user_errors
        def generate(prompt: dict, settings: dict) -> dict:
            """Generate images. prompt: {"segments": [...]} with images as data URLs; settings: steps, guidance,
            seed, width, height, num_images, negative, manipulate, auto_balance. Returns {"images": [data URLs],
            "metadata": [records]}."""
            result = run(studio, MultimodalPrompt.from_dict(prompt), handlers.settings_from(settings))
            return handlers.data_urls(result)

        @user_errors
        def compare(texts: dict, settings: dict) -> dict:
            """One prompt in several languages ({"en": "...", "de": "..."}), same seed. Returns {"images": {lang:
            data URL}, "similarity": {lang: cosine similarity of its encoding to the first language's}}."""
            from multifusion.images import to_data_url

            if not isinstance(texts, dict):
                raise gr.Error('texts must be an object like {"en": "a red circle", "de": "ein roter Kreis"}')
            result, similarity = handlers.compare_languages(studio, texts, handlers.settings_from(settings))
            return {"images": {lang: to_data_url(im) for lang, im in zip(similarity, result.images)}, "similarity": similarity}

        gr.api(generate, api_name="generate", concurrency_id=GPU)
        gr.api(compare, api_name="compare", concurrency_id=GPU)

    demo.queue(default_concurrency_limit=1, max_size=queue_size)
    return demo
