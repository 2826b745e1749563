"""`build_demo(studio)`: the MultiFusion Studio Gradio app. Event functions here only translate between Gradio
and the plain handlers in `handlers.py`; user mistakes become `gr.Error` messages and the server keeps serving.
"""

from __future__ import annotations

import functools
import html
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

from multifusion.checks import is_blank
from multifusion.errors import MultiFusionError
from multifusion.images import MAX_IMAGE_BYTES
from multifusion.png_chunks import PngText, png_text
from multifusion.prompt import LANGUAGES, MultimodalPrompt
from multifusion.runtime import MAX_SEED

from . import handlers
from .composer import composer, with_thumbnails
from .examples import EXAMPLES_DIR, load_examples
from .handlers import Cancelled, Studio
from .queued_calls import queued_calls
from .waiting_line import wait_message
from .zero_gpu import Wrap, no_gpu_slices

LOG = logging.getLogger("multifusion.studio")
GPU = "multifusion-gpu"  # every event that runs the pipeline shares one concurrency group: one at a time
QUEUE_SIZE = 16
# On page load, the composition this browser kept (assets/composer.js) replaces the default one.
RESTORE_COMPOSITION = """(current) => {
  try {
    const kept = JSON.parse(localStorage.getItem("multifusion-studio.composition"));
    return kept && Array.isArray(kept.segments) && kept.segments.length ? kept : current;
  } catch (e) {
    return current;
  }
}"""
HISTORY = 40  # images kept in a session's history strip
# On a narrow screen the results stack below the composer (on a phone about 1,400 px down): Generate brings them,
# and the progress shown on them, into view; the bar's ↑ goes back.
NARROW = 900
SHOW_RESULTS = f"""() => {{
  if (window.innerWidth <= {NARROW}) document.querySelector("#mf-gallery")?.scrollIntoView({{behavior: "smooth", block: "start"}});
}}"""
SCROLL_TO_COMPOSER = '() => { document.querySelector("#composer")?.scrollIntoView({behavior: "smooth", block: "start"}); }'
# System fonts only: the page must work offline, so nothing is fetched from a font CDN.
THEME = gr.themes.Soft(
    primary_hue="violet", secondary_hue="amber", font=["system-ui", "Segoe UI", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)
CSS = """
#mf-title h1 { margin-bottom: 0; }
#mf-model { font-size: 0.9em; opacity: 0.85; }
#mf-generate, #mf-cancel { min-height: 48px; font-size: 1.05em; }
#mf-vocabulary { font-size: 0.9em; opacity: 0.9; }
/* gallery captions (language, similarity, weight, seed) wrap instead of being cut at the image's width */
.gallery-item .caption-label, .caption-label { white-space: normal !important; overflow: visible !important; text-overflow: clip !important; }
/* the history is a strip of thumbnails under its label, each with its seed on one line: Gradio would spread a
   gallery's few images over its whole width and keep 450 px of height */
#mf-history .grid-wrap { min-height: 0 !important; height: auto !important; }
#mf-history .grid-container { grid-template-columns: repeat(auto-fill, minmax(88px, 120px)) !important;
                              grid-template-rows: none !important; grid-auto-rows: auto !important; padding-top: 28px; }
#mf-history .gallery-item { aspect-ratio: 1; }
#mf-history .caption-label { white-space: nowrap !important; overflow: hidden !important; text-overflow: ellipsis !important;
                             max-width: calc(100% - 8px); font-size: 0.75em; padding: 1px 4px; }
/* Generate and Cancel stay in reach: at the top of the results column, and on narrow screens (where the columns
   stack below a long composer) in a bar fixed to the bottom of the window. */
#mf-to-composer { display: none; }
@media (max-width: 900px) {
  #mf-to-composer { display: block; }
  #mf-actions { position: fixed; left: 0; right: 0; bottom: 0; z-index: 100; margin: 0; padding: 8px 12px;
                background: var(--background-fill-primary); box-shadow: 0 -2px 10px rgba(0, 0, 0, 0.15); }
  body { padding-bottom: 80px; }
}
"""


def user_errors(fn: Callable, as_html: bool = True) -> Callable:
    """Turn project errors into a message for the user (on the page a warning toast that leaves every output as it
    was; for API calls a `gr.Error`) and a cancel into a notice. Any other exception is
    a bug: the client gets a short message with an id, and the server log gets the id with the traceback, so no
    internals (object reprs, addresses, paths) ever reach a client. The page shows messages as HTML, so their text
    is escaped there (`<cat>` in a prompt stays visible); API answers (`as_html=False`) keep it plain."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MultiFusionError as error:
            if as_html:  # the page: a toast says what is wrong and every output keeps what it showed
                gr.Warning(html.escape(str(error)), title="Not done")
                return gr.skip()
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


def api_errors(fn: Callable) -> Callable:
    return user_errors(fn, as_html=False)


def filled_languages(*texts: Any) -> int:
    """How many prompts a language comparison makes: the texts that are not blank (at least one, for its cost)."""
    return max(1, sum(isinstance(t, str) and not is_blank(t) for t in texts))


def model_header(studio: Studio) -> str:
    """The model's name, native size, languages and what it draws, as its card declares or its family implies."""
    card, info = studio.card, studio.runtime.info
    side = info.native_side
    facts = [f"**Model:** `{studio.model_name}`", f"native size {side}×{side} px", f"up to {info.max_images} images a prompt"]
    if card.languages:
        facts.append("languages: " + ", ".join(card.languages))
    header = " · ".join(facts)
    draws = card.draws or info.draws
    return header + (f"  \n**Draws** {html.escape(draws)}." if draws else "")


def _recorded(value: Any, default: float) -> Any:
    return default if value is None else value


def _known(mode: Any, modes: tuple[str, ...]) -> str:
    """A recorded manipulation mode if this model has it (a PNG from another family may name another), else both."""
    return mode if mode in modes else "both"


def open_png(file: Any) -> PngText:
    """A dropped file's text chunks and size, read without decoding a pixel; anything but a PNG is the user's
    mistake, not a crash."""
    path = Path(file if isinstance(file, str) else getattr(file, "name", ""))
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise gr.Error(f"That file is larger than {MAX_IMAGE_BYTES // 2**20} MiB.", print_exception=False)
        with open(path, "rb") as f:
            return png_text(f, "that file")
    except OSError:
        raise gr.Error("That file could not be read.", print_exception=False) from None


def build_demo(
    studio: Studio, zero_gpu: Wrap = no_gpu_slices, queue_size: int = QUEUE_SIZE
) -> gr.Blocks:
    """The whole app for one loaded model.

    `zero_gpu` wraps GPU work (`zero_gpu.zero_gpu`: `spaces.GPU` on ZeroGPU Spaces, each call asking for the time its
    request costs); beyond `queue_size` waiting requests, new
    ones are turned away with Gradio's "Queue is full" message instead of waiting without end.
    """
    examples = load_examples()
    # Images may come from Gradio's upload folder or the bundled examples; any other server path is refused.
    studio.trusted_dirs = tuple(dict.fromkeys((*studio.trusted_dirs, EXAMPLES_DIR, Path(get_upload_folder()))))
    runtime = studio.runtime  # what the loaded model declares sets every control's default and limit
    multiple, default_side = runtime.size_multiple, runtime.native_side
    run = zero_gpu(handlers.generate, lambda *args, **kwargs: 1)
    compare_languages = zero_gpu(handlers.compare_languages, lambda studio, texts, *rest, **kw: filled_languages(*texts.values()))
    weight_sweep = zero_gpu(handlers.weight_sweep, lambda studio, prompt, index, low, high, count, *rest, **kw: int(count))

    # Gradio copies every image it shows into its cache: files older than an hour go every 10 minutes, all at exit
    with gr.Blocks(title="MultiFusion Studio", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# MultiFusion Studio\nCompose prompts from text in five languages and images, with a weight per segment.",
                    elem_id="mf-title")  # fmt: skip
        gr.Markdown(model_header(studio), elem_id="mf-model")
        wait_note = gr.Markdown("", elem_id="mf-wait")  # what is ahead of a job that just joined the line
        last_seed = gr.State(None)
        history_paths = gr.State([])  # this session's PNGs, newest first
        clicked = gr.State(0)  # the session's cancel count when Generate (Compare, Sweep) was clicked

        with gr.Tab("Generate"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=5):
                    composition = composer(examples[0]["composition"], runtime.info.max_images)
                    vocabulary = gr.Markdown("", elem_id="mf-vocabulary")
                    negative = gr.Textbox(label="Negative prompt", placeholder="what to steer away from (optional)", lines=1, elem_id="mf-negative")
                    example_list = gr.Dataset(components=[gr.Textbox(visible=False)], samples=[[e["label"]] for e in examples],
                                              label="Examples", type="index", samples_per_page=12)  # fmt: skip
                    restore_file = gr.File(label="Restore: drop a PNG made here", file_types=[".png"], height=140)
                with gr.Column(scale=4):
                    with gr.Row(elem_id="mf-actions"):
                        to_composer = gr.Button("↑", elem_id="mf-to-composer", scale=0, min_width=48)  # narrow screens: back to the prompt
                        generate_btn = gr.Button("Generate", variant="primary", elem_id="mf-generate", elem_classes="mf-run", scale=3)
                        cancel_btn = gr.Button("Cancel", variant="secondary", elem_id="mf-cancel", elem_classes="mf-cancel", scale=1, min_width=80)
                    gallery = gr.Gallery(label="Results", elem_id="mf-gallery", columns=4, height="auto", object_fit="contain",
                                         buttons=["download", "fullscreen"])  # fmt: skip
                    with gr.Accordion("Settings", open=True):
                        seed = gr.Number(label="Seed", value=handlers.RANDOM_SEED, precision=0, minimum=handlers.RANDOM_SEED, maximum=MAX_SEED,
                                         info="-1: a new random seed each run (each image's seed is in its caption)", elem_id="mf-seed")  # fmt: skip
                        with gr.Row():
                            randomise = gr.Button("Random each run", size="sm")
                            reuse = gr.Button("Reuse last seed", size="sm")
                        steps = gr.Slider(1, 100, value=studio.runtime.default_steps, step=1, label="Steps", elem_id="mf-steps",
                                          info=f"{studio.runtime.scheduler_name}; the model's default is {studio.runtime.default_steps}")  # fmt: skip
                        guidance = gr.Slider(0, 15, value=runtime.default_guidance, step=0.5, label="Guidance",
                                             info=f"the model's default is {runtime.default_guidance:g}")  # fmt: skip
                        with gr.Row():
                            max_side = studio.runtime.max_side  # the model's limit, not a fixed 1024
                            width = gr.Slider(multiple, max_side, value=default_side, step=multiple, label="Width", elem_id="mf-width")
                            height = gr.Slider(multiple, max_side, value=default_side, step=multiple, label="Height")
                        size_note = gr.Markdown("", elem_id="mf-size-note")
                        num_images = gr.Slider(1, 8, value=2, step=1, label="Images per run", elem_id="mf-num-images",
                                               info=f"a run may cost up to {runtime.options.max_cost:g} native-image steps "
                                               f"(images × steps × size; e.g. 8 images of {runtime.default_steps} steps "
                                               f"cost {8 * runtime.default_steps})")  # fmt: skip
                        with gr.Row():
                            manipulate = gr.Radio(list(runtime.manipulate_modes), value="both", label="Weights act in")
                            balance = gr.Checkbox(value=runtime.info.default_auto_balance, label="Balance text against images")
                    with gr.Accordion("Prompt and settings of the first image", open=False):
                        record = gr.JSON(show_label=False, elem_id="mf-record")
            history = gr.Gallery(label="History of this session: click an image to restore how it was made", elem_id="mf-history",
                                 columns=10, height="auto", allow_preview=False, object_fit="contain")  # fmt: skip

        with gr.Tab("Compare languages"):
            gr.Markdown("One prompt in up to five languages, the same seed for each (the Generate tab's settings). "
                        "*sim.* is each language's encoding similarity to the first one filled in.")  # fmt: skip
            with gr.Row():
                lang_boxes = {
                    lang: gr.Textbox(label=lang, value=text, lines=2)
                    for lang, text in zip(LANGUAGES, ("a blue triangle and a green heart", "ein blaues Dreieck und ein grünes Herz",
                                                      "un triangle bleu et un cœur vert", "un triangolo blu e un cuore verde",
                                                      "un triángulo azul y un corazón verde"))  # fmt: skip
                }
            with gr.Row():
                compare_btn = gr.Button("Compare", variant="primary", elem_classes="mf-run", scale=3)
                compare_cancel = gr.Button("Cancel", variant="secondary", elem_classes="mf-cancel", scale=1)
            compare_gallery = gr.Gallery(label="Languages side by side", elem_id="mf-compare-gallery", columns=5, height="auto",
                                         object_fit="contain")  # fmt: skip

        with gr.Tab("Weight sweep"):
            gr.Markdown("One segment of the Generate tab's composition, its weight swept over a range (same seed).")
            with gr.Row():
                sweep_segment = gr.Number(label="Segment (1 = first card)", value=1, precision=0, minimum=1)
                sweep_low = gr.Slider(0, 5, value=0, step=0.05, label="From weight")
                sweep_high = gr.Slider(0, 5, value=2.5, step=0.05, label="To weight")
                sweep_count = gr.Slider(2, 9, value=5, step=1, label="Steps along the sweep", elem_id="mf-sweep-count")
            with gr.Row():
                sweep_btn = gr.Button("Sweep", variant="primary", elem_classes="mf-run", scale=3)
                sweep_cancel = gr.Button("Cancel", variant="secondary", elem_classes="mf-cancel", scale=1)
            sweep_gallery = gr.Gallery(label="Weight sweep", elem_id="mf-sweep-gallery", columns=5, height="auto", object_fit="contain")

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

        def session(request: gr.Request | None) -> str:
            return request.session_hash if request and request.session_hash else "local"

        def denoising(progress: gr.Progress, job: handlers.RunningJob) -> Callable[[int, int], None]:
            def step(i: int, n: int) -> None:
                job.advance(i, n)
                progress((i, n), desc="Denoising", unit="steps")

            return step

        def what_is_ahead(request: gr.Request) -> tuple[str, int]:
            """A click's first, instant event: what is ahead of the job it is about to queue, and the mark by which
            that job knows, when it starts, whether it was cancelled since (`Studio.job`)."""
            running, running_work = studio.line.running()
            waiting, waiting_work = queued_calls(demo, GPU, queued_costs)
            message = wait_message(running + waiting, running_work + waiting_work, studio.runtime.seconds_per_cost)
            return message, studio.cancels(session(request))

        def priced(count_prompts: Callable[..., int], n_before: int) -> Callable[..., float]:
            """The cost of a queued studio event from its inputs: `n_before` values, then the settings."""
            return lambda *values: studio.runtime.cost(settings_of(*values[n_before : n_before + len(settings_inputs)]),
                                                       count_prompts(*values[:n_before]))  # fmt: skip

        def remembered(result: handlers.Result, paths: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
            """The history strip and its paths with a run's images in front (at most HISTORY)."""
            paths = ([str(p) for p in result.paths] + paths)[:HISTORY]
            return [(p, f"seed {Path(p).stem.split('-')[1]}") for p in paths], paths

        @user_errors
        def on_generate(value, steps, guidance, seed, width, height, num_images, negative, manipulate, balance, paths, mark,
                        request: gr.Request, progress=gr.Progress()):  # fmt: skip
            prompt = handlers.composition_to_prompt(studio, value)
            settings = settings_of(steps, guidance, seed, width, height, num_images, negative, manipulate, balance)
            first = (f"Compiling the {runtime.info.denoiser} for this size (once per size), then denoising"
                     if runtime.compiles(settings) else "Denoising")  # fmt: skip
            progress((0, settings.steps * settings.num_images), desc=first, unit="steps")
            with studio.job(session(request), studio.runtime.cost(settings), clicked=mark) as job:
                result = run(studio, prompt, settings, on_step=denoising(progress, job), cancel=job.cancel)
            return result.gallery(), result.records[0], settings.seed, *remembered(result, paths)

        def on_cancel(request: gr.Request) -> str:
            studio.cancel(session(request))
            return ""

        to_composer.click(None, js=SCROLL_TO_COMPOSER)
        for size in (width, height):
            size.change(lambda w, h: handlers.size_notice(runtime, w, h), [width, height], size_note, queue=False,
                        show_progress="hidden", api_visibility="private")  # fmt: skip
        generate_event = generate_btn.click(what_is_ahead, None, [wait_note, clicked], queue=False, api_visibility="private",
                                            js=SHOW_RESULTS).then(
            on_generate, [composition, *settings_inputs, history_paths, clicked], [gallery, record, last_seed, history, history_paths],
            concurrency_id=GPU, api_visibility="private")  # fmt: skip
        randomise.click(lambda: handlers.RANDOM_SEED, None, seed, queue=False, api_visibility="private")
        reuse.click(lambda last, current: current if last is None else last, [last_seed, seed], seed, queue=False,
                    api_visibility="private")  # fmt: skip
        composition.change(lambda value: handlers.vocabulary_notice(studio, value), composition, vocabulary, queue=False,
                           show_progress="hidden", api_visibility="private")  # fmt: skip

        def on_example(index: int):
            example = examples[index]
            seed = example.get("seed", 0)
            gr.Info(f"Example loaded with its seed, {seed}. For new pictures each run, press “Random each run”.")
            return example["composition"], seed

        example_list.click(on_example, example_list, [composition, seed], api_visibility="private")  # queued: to show its notice
        demo.load(None, composition, composition, js=RESTORE_COMPOSITION)

        def restored(png: PngText) -> tuple:
            """The composer and every setting from a PNG's record, saying what could not be restored."""
            value, settings, missing = handlers.restore(studio, png)
            negative_text = handlers.negative_as_text(settings.get("negative"))
            not_restored = [f"the images of {', '.join(missing)} (not on this server any more: add them again)"] if missing else []
            if negative_text is None:
                not_restored.append("the negative prompt (it holds images; the box takes text)")
            if not_restored:
                gr.Warning("Restored everything except " + "; ".join(not_restored) + ".")
            else:
                gr.Info("Restored the composition, the negative prompt and every setting.")
            return (with_thumbnails(value), settings.get("steps") or runtime.default_steps, _recorded(settings.get("guidance"), runtime.default_guidance),
                    settings["seed"], settings.get("width") or default_side, settings.get("height") or default_side, 1,
                    gr.skip() if negative_text is None else negative_text, _known(settings.get("manipulate"), runtime.manipulate_modes),
                    settings.get("auto_balance", runtime.info.default_auto_balance))  # fmt: skip

        restorable = [composition, steps, guidance, seed, width, height, num_images, negative, manipulate, balance]

        @user_errors
        def on_restore(file):
            return gr.skip() if file is None else restored(open_png(file))

        @user_errors
        def on_history(paths: list[str], event: gr.SelectData):
            if not 0 <= event.index < len(paths):
                return gr.skip()
            return restored(open_png(paths[event.index]))

        restore_file.upload(on_restore, restore_file, restorable, api_visibility="private")
        history.select(on_history, history_paths, restorable, api_visibility="private")

        @user_errors
        def on_png_info(file):
            return gr.skip() if file is None else handlers.png_info(open_png(file))

        info_file.upload(on_png_info, info_file, [info_text, info_record], api_visibility="private")

        @user_errors
        def on_compare(en, de, fr, it, es, steps, guidance, seed, width, height, num_images, negative, manipulate, balance,
                       paths, mark, request: gr.Request, progress=gr.Progress()):  # fmt: skip
            texts = dict(zip(LANGUAGES, (en, de, fr, it, es)))
            settings = settings_of(steps, guidance, seed, width, height, num_images, negative, manipulate, balance)
            with studio.job(session(request), studio.runtime.cost(settings, filled_languages(*texts.values())), clicked=mark) as job:
                result, _ = compare_languages(studio, texts, settings, denoising(progress, job), job.cancel)
            return result.gallery(), settings.seed, *remembered(result, paths)

        compare_inputs = [*lang_boxes.values(), *settings_inputs]
        compare_event = compare_btn.click(what_is_ahead, None, [wait_note, clicked], queue=False, api_visibility="private").then(
            on_compare, [*compare_inputs, history_paths, clicked], [compare_gallery, last_seed, history, history_paths],
            concurrency_id=GPU, api_visibility="private")  # fmt: skip

        @user_errors
        def on_sweep(value, index, low, high, count, steps, guidance, seed, width, height, num_images, negative, manipulate,
                     balance, paths, mark, request: gr.Request, progress=gr.Progress()):  # fmt: skip
            prompt = handlers.composition_to_prompt(studio, value)
            settings = settings_of(steps, guidance, seed, width, height, num_images, negative, manipulate, balance)
            with studio.job(session(request), studio.runtime.cost(settings, int(count)), clicked=mark) as job:
                result = weight_sweep(studio, prompt, int(index or 0), float(low), float(high), int(count), settings,
                                               denoising(progress, job), job.cancel)  # fmt: skip
            return result.gallery(), settings.seed, *remembered(result, paths)

        sweep_event = sweep_btn.click(what_is_ahead, None, [wait_note, clicked], queue=False, api_visibility="private").then(
            on_sweep, [composition, sweep_segment, sweep_low, sweep_high, sweep_count, *settings_inputs, history_paths, clicked],
            [sweep_gallery, last_seed, history, history_paths], concurrency_id=GPU, api_visibility="private")  # fmt: skip

        # Cancel (button or Esc) takes a waiting job out of the queue and stops a running one at its next step; a
        # closed or reloaded tab cancels its session's job the same way, so it does not hold the queue.
        jobs = [generate_event, compare_event, sweep_event]
        for button in (cancel_btn, compare_cancel, sweep_cancel):
            button.click(on_cancel, None, wait_note, queue=False, cancels=jobs, api_visibility="private")
        def on_leave(request: gr.Request) -> None:
            studio.leave(session(request))

        demo.unload(on_leave)
        for job_event in jobs:  # however a job ends (done, failed, cancelled), what was ahead of it is over
            job_event.then(lambda: "", None, wait_note, queue=False, api_visibility="private")

        api_costs = {  # what each API endpoint's call costs, by its inputs
            "generate": lambda prompt, settings: studio.runtime.cost(handlers.settings_from(settings)),
            "compare": lambda texts, settings: studio.runtime.cost(handlers.settings_from(settings), filled_languages(*texts.values())),
        }  # fmt: skip
        queued_costs = {**api_costs, "on_generate": priced(lambda *_: 1, 1), "on_compare": priced(filled_languages, len(LANGUAGES)),
                        "on_sweep": priced(lambda composition, index, low, high, count: int(count), 5)}  # fmt: skip

        @api_errors
        def generate(prompt: dict, settings: dict) -> dict:
            """Generate images. prompt: {"segments": [...]} with images as data URLs; settings: steps, guidance,
            seed, width, height, num_images, negative, manipulate, auto_balance. Returns {"images": [data URLs],
            "metadata": [records]}."""
            parsed, chosen = MultimodalPrompt.from_dict(prompt), handlers.settings_from(settings)
            with studio.job(f"api-{uuid.uuid4().hex}", api_costs["generate"](prompt, settings)):  # in the line while it runs
                result = run(studio, parsed, chosen)
            return handlers.data_urls(result)

        @api_errors
        def compare(texts: dict, settings: dict) -> dict:
            """One prompt in several languages ({"en": "...", "de": "..."}), same seed. Returns {"images": {lang:
            data URL}, "similarity": {lang: cosine similarity of its encoding to the first language's}}."""
            if not isinstance(texts, dict):
                raise gr.Error('texts must be an object like {"en": "a red circle", "de": "ein roter Kreis"}')
            if isinstance(settings, dict) and settings.get("num_images", 1) != 1:
                raise gr.Error("compare makes one image per language: num_images must be 1 (or left out)")
            chosen = handlers.settings_from(settings)
            with studio.job(f"api-{uuid.uuid4().hex}", api_costs["compare"](texts, settings)):
                result, similarity = compare_languages(studio, texts, chosen)
            return {"images": {lang: handlers.png_data_url(path) for lang, path in zip(similarity, result.paths)},
                    "similarity": similarity}  # fmt: skip

        gr.api(generate, api_name="generate", concurrency_id=GPU)
        gr.api(compare, api_name="compare", concurrency_id=GPU)

    demo.queue(default_concurrency_limit=1, max_size=queue_size)
    return demo
