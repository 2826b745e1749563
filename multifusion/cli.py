"""`multifusion` command line: `multifusion generate PROMPT`, `multifusion eval`, `multifusion serve`.

Bad input prints one line starting with "error:" and exits with status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from .checks import shorten
from .errors import MultiFusionError, PromptError
from .prompt import DEFAULT_LIMITS, ImageSegment, MultimodalPrompt
from .shapes.recipe import STAGES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _image_option(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--image expects NAME=PATH, got {text!r}")
    return name, path


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="multifusion", description="Multilingual, multimodal image generation (MultiFusion).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="generate images from a prompt")
    gen.add_argument(
        "prompt",
        help="prompt in the prompt syntax, e.g. 'a photo of <cat> in (red:1.5)', or a JSON prompt {\"segments\": ...}",
    )
    gen.add_argument("--image", action="append", type=_image_option, default=[], metavar="NAME=PATH",
                     help="an image used as <NAME> in the prompt (repeatable)")  # fmt: skip
    gen.add_argument("--model", default=None, help="pipeline directory or hub id (default: weights/multifusion-tiny)")
    gen.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    gen.add_argument("--scheduler", default=None, help="sampler: dpm++2m, dpm++2m-karras, dpm++3m, unipc, euler, euler-a, "
                     "ddim (default: the model's)")  # fmt: skip
    gen.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: the model's)")
    gen.add_argument("--seed", type=int, default=0, help="seed of the first image; image i uses seed + i")
    gen.add_argument("--width", type=int, default=None, help="width in pixels (default: the model's)")
    gen.add_argument("--height", type=int, default=None, help="height in pixels (default: the model's)")
    gen.add_argument("--num-images", type=int, default=1, help="number of images (default: 1)")
    gen.add_argument("--negative", default=None, help="negative prompt, in the prompt syntax")
    gen.add_argument("--manipulate", choices=("both", "encoder", "unet", "transformer"), default="both",
                     help="where segment weights act: both, encoder, and the denoiser: unet (MultiFusion models) or "
                     "transformer (Qwen-Image) (default: both)")  # fmt: skip
    gen.add_argument("--balance", action=argparse.BooleanOptionalAction, default=None,
                     help="balance text against images when images have more tokens (default: the model's)")
    gen.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    _add_memory_options(gen)
    gen.add_argument("--out", default="multifusion.png",
                     help="output PNG; with several images, NAME-1.png, NAME-2.png, ... (default: multifusion.png)")  # fmt: skip
    gen.add_argument("--mkdir", action="store_true", help="create the output's missing parent folders")
    gen.set_defaults(run=_generate)

    ev = commands.add_parser("eval", help="run the shapes-world benchmarks on a pipeline; JSON report")
    ev.add_argument("--model", default=None, help="pipeline directory or hub id (default: weights/multifusion-tiny)")
    ev.add_argument("--out", default=None, help="write the JSON report here")
    ev.add_argument("--quick", action="store_true", help="small samples, for a fast look")
    ev.add_argument("--benchmarks", default=None, help="comma-separated subset of single, mcc, weights, languages, "
                    "paraphrase, terse, image_prompt (default: all)")  # fmt: skip
    ev.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    ev.add_argument("--scheduler", default=None, help="sampler, as for generate (default: the model's)")
    ev.add_argument("--guidance", type=float, default=5.0, help="guidance scale (default: 5)")
    ev.add_argument("--guidance-end", type=float, default=None, help="guided share of the steps, 0 to 1 (default: the model's)")
    ev.add_argument("--seed", type=int, default=0, help="image i of every benchmark uses seed + i")
    ev.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    ev.set_defaults(run=_evaluate)

    tr = commands.add_parser("train", help="run a stage of the training recipe (vae, unet, encoder, realign) or all")
    tr.add_argument("stage", choices=(*STAGES, "all", "refine"),
                    help="the stage to run; all runs the four in order, then the config's refine rounds and their "
                         "average; refine continues the pipeline given by --from")
    tr.add_argument("--from", dest="source", default=None, help="refine: the trained pipeline to refine")
    tr.add_argument("--config", default="tiny", help="a bundled config name (tiny) or a JSON file (default: tiny)")
    tr.add_argument("--out", default="runs/tiny", help="run folder shared by the stages (default: runs/tiny)")
    tr.add_argument("--resume", action="store_true", help="continue from the stage's last checkpoint; a stage "
                    "that finished (in OUT/times.json) is kept")
    tr.set_defaults(run=_train)

    fu = commands.add_parser("fuse", help="fuse a Stable Diffusion checkpoint, a language model and a vision tower, "
                             "named by hub id or directory, into one untrained MultiFusion pipeline")  # fmt: skip
    fu.add_argument("--stable-diffusion", required=True, help="a diffusers SD 1.x/2.x checkpoint (its text encoder is the teacher)")
    fu.add_argument("--lm", required=True, help="any AutoModelForCausalLM with its tokenizer (Llama, Qwen2, Mistral, Gemma, ...)")
    fu.add_argument("--vision", required=True, help="a CLIP or SigLIP vision tower (or a two-tower checkpoint)")
    fu.add_argument("--captions", required=True, help="captioned images (imagefolder with metadata.jsonl, or webdataset "
                    ".tar shards) whose English captions fit the cross-attention's start")  # fmt: skip
    fu.add_argument("--n-captions", type=int, default=2048, help="captions to fit on (default: 2048)")
    fu.add_argument("--image-tokens", type=int, default=16, help="image prefix length, a square (default: 16)")
    fu.add_argument("--adapter-dim", type=int, default=64, help="bottleneck adapters' width, 0 for none (default: 64)")
    fu.add_argument("--max-length", type=int, default=77, help="prompt length in LM tokens (default: 77)")
    fu.add_argument("--out", required=True, help="where to save the fused pipeline")
    fu.set_defaults(run=_fuse)

    pr = commands.add_parser("prefix", help="stage 3 on captioned images: train a fused pipeline's image prefix and "
                             "adapters, LM frozen, MAGMA-style (one device, or many under accelerate launch)")  # fmt: skip
    ra = commands.add_parser("realign", help="stage 4 on captioned images: train a fused pipeline's cross-attention "
                             "to read its encoder (one device, or many under accelerate launch)")  # fmt: skip
    for command, config_name in ((pr, "PrefixConfig"), (ra, "RealignConfig")):
        command.add_argument("--from", dest="source", required=True, help="the fused pipeline (multifusion fuse --out, "
                             "or the pipeline of the stage before)")  # fmt: skip
        command.add_argument("--data", required=True, help="captioned images: imagefolder with metadata.jsonl, or .tar shards")
        command.add_argument("--out", required=True, help="run folder: checkpoints, log.jsonl, pipeline/")
        command.add_argument("--config", default=None, help=f"JSON file overriding {config_name}'s defaults (steps, batch_size, ...)")
        command.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
        command.set_defaults(run=_real_data_stage)

    pl = commands.add_parser("plan", help="from components' configs: a fusion's memory per GPU and hours per stage "
                             "(--config), or how to serve a Qwen-Image-Edit-Plus model on 12-80 GB GPUs (--serve)")  # fmt: skip
    what = pl.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", help="fusion JSON: stable_diffusion, lm, vision, prefix {...}, realign {...}")
    what.add_argument("--serve", metavar="MODEL", help="a Qwen-Image-Edit-Plus folder or hub id (offline: Qwen/Qwen-Image-"
                      "Edit-2509 and -2511 from shipped config snapshots): memory per component and per GPU size")  # fmt: skip
    pl.add_argument("--gpu-sizes", default="12,16,24,48,80", help="with --serve: GPU sizes in GB (default: 12,16,24,48,80)")
    pl.add_argument("--size", type=int, default=1024, help="with --serve: image side in px (default: 1024, the native size)")
    pl.add_argument("--reference-images", type=int, default=1, help="with --serve: reference images per prompt (default: 1)")
    pl.add_argument("--gpus", type=int, default=1, help="GPUs (default: 1)")
    pl.add_argument("--gpu-memory", type=float, default=80.0, help="GiB per GPU (default: 80)")
    pl.add_argument("--shard", action="store_true", help='as the stages\' "shard": true (FSDP2): the weights split over the GPUs')
    pl.add_argument("--headroom", type=float, default=0.15, help="share of GPU memory kept free (default: 0.15)")
    pl.add_argument("--measured", default=None, help="a run's log.jsonl: hours per stage from its step times")
    pl.set_defaults(run=_plan)

    serve = commands.add_parser("serve", help="start the MultiFusion Studio web app")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    serve.add_argument("--model", default=None, help="pipeline directory or hub id (default: weights/multifusion-tiny)")
    _add_memory_options(serve)
    serve.set_defaults(run=_serve)
    return parser


def _read_prompt(text: str, images: list[tuple[str, str]]) -> MultimodalPrompt:
    from .images import load_image
    from .syntax import parse_prompt

    if text.lstrip().startswith("{"):
        if images:
            raise PromptError("--image is for the prompt syntax; a JSON prompt gives its images inline")
        return MultimodalPrompt.from_json(text, allow_paths=True)
    if text.lstrip().startswith("[") and _is_json_list(text):
        raise PromptError('a JSON prompt is an object, {"segments": [...]}, not a list')
    loaded = {}
    for name, path in images:
        if name in loaded:
            raise PromptError(f"--image {name} is given twice")
        loaded[name] = load_image(path, max_pixels=DEFAULT_LIMITS.max_image_pixels, allow_paths=True, what=f"--image {name}")
    prompt = parse_prompt(text, loaded).validate()
    unused = sorted(set(loaded) - {s.name for s in prompt.segments if isinstance(s, ImageSegment)})
    if unused:
        raise PromptError(f"--image {unused[0]}: the prompt never places <{unused[0]}>")
    return prompt


def _is_json_list(text: str) -> bool:
    import json

    try:
        return isinstance(json.loads(text), list)
    except (ValueError, RecursionError):
        return False


def _output_paths(out: str, count: int, mkdir: bool = False) -> list[Path]:
    """The PNG paths to write, checked before any model loads: a writable folder (created only with --mkdir) and
    no folder where a file should go."""
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise PromptError(f"--out must name a .png file, got {shorten(out)}")
    parent = path.parent
    if mkdir and not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as error:
            raise PromptError(f"--out: cannot create {parent} ({error.strerror or 'not possible'})") from None
    if not parent.is_dir():
        raise PromptError(f"--out: {parent} is not a folder" + ("" if parent.exists() else " (add --mkdir to create it)"))
    try:  # a probe file says more than permission bits (root, read-only mounts, /proc)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".multifusion-probe-"):
            pass
    except OSError as error:
        raise PromptError(f"--out: {parent} is not writable ({error.strerror or type(error).__name__})") from None
    paths = [path] if count == 1 else [path.with_name(f"{path.stem}-{i + 1}{path.suffix}") for i in range(count)]
    for target in paths:
        if target.is_dir():
            raise PromptError(f"--out: {target} is a folder")
    return paths


def _add_memory_options(parser: argparse.ArgumentParser) -> None:
    """How to fit a big model on the GPU at hand (`multifusion/memory.py`) and the LoRAs to load."""
    from .memory import DEVICE_MAPS, OFFLOADS, QUANTIZATIONS

    parser.add_argument("--offload", choices=OFFLOADS, default=None, help="keep weights on the CPU and move them to the GPU "
                        "per component (model), per group of blocks (group, group-leaf) or per layer (sequential)")  # fmt: skip
    parser.add_argument("--group-blocks", type=int, default=1, help="with --offload group: blocks moved together (default: 1)")
    parser.add_argument("--device-map", choices=DEVICE_MAPS, default=None, help="spread the components over several GPUs")
    parser.add_argument("--quantize", choices=tuple(QUANTIZATIONS), default=None, help="8-bit or 4-bit weights (bitsandbytes, "
                        "CUDA) or int8 weight-only (torchao); needs pip install 'multifusion[quant]'")  # fmt: skip
    parser.add_argument("--lora", action="append", default=[], metavar="PATH_OR_ID[:SCALE]",
                        help="a LoRA file, folder or hub org/repo/FILE.safetensors, with its scale (default 1; repeatable)")  # fmt: skip


def runtime_options(args: argparse.Namespace) -> Any:
    """`RuntimeOptions` from a command's arguments (those it does not have keep their defaults)."""
    from .runtime import RuntimeOptions

    if getattr(args, "group_blocks", 1) < 1:
        raise PromptError(f"--group-blocks must be at least 1, got {args.group_blocks}")
    return RuntimeOptions(
        device=getattr(args, "device", None), scheduler=getattr(args, "scheduler", None), offload=getattr(args, "offload", None),
        group_blocks=getattr(args, "group_blocks", 1), device_map=getattr(args, "device_map", None),
        quantize=getattr(args, "quantize", None), loras=tuple(getattr(args, "lora", ())),
    )  # fmt: skip


def _load_runtime(args: argparse.Namespace):
    from .runtime import DEFAULT_MODEL, Runtime
    from .schedulers import SCHEDULERS

    scheduler = getattr(args, "scheduler", None)
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise PromptError(f"--scheduler: unknown {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    model = args.model or str(DEFAULT_MODEL)
    if args.model is None and not DEFAULT_MODEL.is_dir():
        raise PromptError(f"the default model is not at {DEFAULT_MODEL}; pass --model DIR")
    try:
        return Runtime.load(model, runtime_options(args)), model
    except MultiFusionError:
        raise
    except (OSError, ValueError) as error:
        if not Path(model).exists():  # a hub id: diffusers' message points at a traceback the user never sees
            raise PromptError(f"cannot load {model!r}: it is not a folder here, and the hub has no such model or "
                              "cannot be reached (offline?)") from None  # fmt: skip
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PromptError(f"cannot load a model from {model!r}: {first_line}") from None


def _train(args: argparse.Namespace) -> int:
    import json
    import time
    from importlib import import_module

    from accelerate import Accelerator

    from .shapes.recipe import MODULES
    from .shapes.recipe.config import load_config
    from .training.loop import checkpointed_seconds

    try:
        config = load_config(args.config)
    except (OSError, ValueError) as error:
        raise PromptError(str(error)) from None
    out = Path(args.out)
    if (args.stage == "refine") != (args.source is not None):
        raise PromptError("--from names the pipeline to refine, and only the refine stage takes it")
    if args.source is not None:
        _require_pipeline(args.source)
    if args.stage == "refine" and "refine" not in config:
        raise PromptError(f"the config {args.config!r} has no refine section")
    if args.stage == "all":
        plan = [(name, name, {}) for name in STAGES] + _after_stage_four(config, out)
    elif args.stage == "refine":
        plan = [("refine", "refine", {"source": Path(args.source)})]
    else:
        plan = [(args.stage, args.stage, {})]
    times_path = out / "times.json"  # a stage's entry is written once it has finished
    for name, module, kwargs in plan:
        times = json.loads(times_path.read_text()) if times_path.exists() else {}
        if args.resume and name in times and (out / name).is_dir():
            print(f"{name}: finished earlier ({times[name]:.0f} s), kept")
            continue
        earlier = checkpointed_seconds(out / name) if args.resume else 0.0
        began = time.perf_counter()
        accelerator = Accelerator()  # one per stage: its checkpoints hold that stage's models only
        stage = import_module(f".shapes.recipe.{MODULES[module]}", __package__)
        result = stage.run(config, out, accelerator, resume=args.resume, **kwargs)
        times[name] = round(time.perf_counter() - began + earlier, 1)  # wall seconds, resumed runs' included
        times_path.write_text(json.dumps(times, indent=1))
        print(f"{name}: saved {result} ({times[name]:.0f} s)")
    return 0


def _after_stage_four(config: dict, out: Path) -> list[tuple[str, str, dict]]:
    """`train all` ends with the config's `refine.rounds` refinements, each of the pipeline before it (its own
    teacher) into OUT/refine-K, then, if `refine.average_last` is 2 or more, the mean of that many last rounds
    into OUT/average, then `tags.rounds` more refinements into OUT/tags-K, with the `tags` section's keys in
    place of `refine`'s (a share `terse_share` of their captions typed as tags): the shipped model's lineage,
    from an empty folder in one command."""
    refine = config.get("refine", {})
    rounds, last = refine.get("rounds", 0), refine.get("average_last", 0)
    if not isinstance(last, int) or not 0 <= last <= rounds or last == 1:
        raise PromptError(f"refine.average_last is {last!r}: 0 (no average) or 2 to refine.rounds ({rounds})")
    plan, source = [], out / "realign" / "pipeline"
    round_pipelines = []
    for k in range(1, rounds + 1):
        plan.append((f"refine-{k}", "refine", {"source": source, "name": f"refine-{k}"}))
        source = out / f"refine-{k}" / "pipeline"
        round_pipelines.append(source)
    if last:
        plan.append(("average", "average", {"sources": round_pipelines[-last:]}))
        source = out / "average" / "pipeline"
    tags = dict(config.get("tags", {}))  # further rounds that also read tag-style prompts: refine's keys, overridden
    for k in range(1, tags.pop("rounds", 0) + 1):
        plan.append((f"tags-{k}", "refine", {"source": source, "name": f"tags-{k}", "overrides": tags}))
        source = out / f"tags-{k}" / "pipeline"
    return plan


def _require_pipeline(source: str) -> None:
    if not (Path(source) / "model_index.json").is_file():
        raise PromptError(f"--from: no pipeline (model_index.json) in {source}")


def _fuse(args: argparse.Namespace) -> int:
    import json
    from itertools import islice

    from .fusion.assemble import fuse_pretrained
    from .training.captioned_images import CaptionedImages

    try:
        samples = CaptionedImages(args.captions)
        captions = [s.caption for s in islice((s for s in samples if s.language in (None, "en")), args.n_captions)]
    except (OSError, ValueError) as error:
        raise PromptError(f"--captions: {error}") from None
    if len(captions) < 2:
        raise PromptError(f"--captions: found {len(captions)} English captions in {args.captions}; the fit needs many")
    try:
        pipe, r2 = fuse_pretrained(args.stable_diffusion, args.lm, args.vision, captions, args.image_tokens, args.adapter_dim,
                                   args.max_length)  # fmt: skip
    except OSError as error:  # a reference that is neither a model folder nor a reachable hub id
        raise PromptError(f"could not load a component: {error}") from None
    except (ValueError, NotImplementedError) as error:  # e.g. image tokens not a square, an SDXL U-Net
        raise PromptError(str(error)) from None
    out = Path(args.out)
    pipe.save_pretrained(out)
    (out / "fuse.json").write_text(json.dumps({"captions": len(captions), "state_map_r2": round(r2, 4), "stable_diffusion":
                                               args.stable_diffusion, "lm": args.lm, "vision": args.vision}, indent=1))  # fmt: skip
    print(f"fused: saved {out} (cross-attention started from a state map with R² {r2:.3f} on {len(captions)} captions)")
    return 0


def _real_data_stage(args: argparse.Namespace) -> int:
    from .fusion import stage_prefix, stage_realign
    from .training.captioned_images import CaptionedImages
    from .training.sharding import check_shard

    stage, config_class = {"prefix": (stage_prefix, stage_prefix.PrefixConfig),
                           "realign": (stage_realign, stage_realign.RealignConfig)}[args.command]  # fmt: skip
    try:
        config = config_class.load(args.config)
        accelerator = config.accelerator()
        check_shard(accelerator, config.shard)
    except (OSError, ValueError, TypeError) as error:
        raise PromptError(f"--config: {error}") from None
    _require_pipeline(args.source)
    try:
        CaptionedImages(args.data)
    except ValueError as error:
        raise PromptError(f"--data: {error}") from None
    result = stage.run(args.source, args.data, Path(args.out), accelerator, config, resume=args.resume)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # every process leaves the group together (one exiting with it open can abort)
    print(f"{args.command}: saved {result}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    if args.serve:
        return _plan_serving(args)
    from .fusion.plan import FusionConfig, measured_seconds_per_step, plan, report

    if args.gpus < 1 or args.gpu_memory <= 0 or not 0 <= args.headroom < 1:
        raise PromptError("--gpus must be at least 1, --gpu-memory positive, --headroom from 0 to below 1")
    try:
        measured = measured_seconds_per_step(args.measured) if args.measured else {}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PromptError(f"--measured: not a run's log.jsonl ({error})") from None
    try:
        config = FusionConfig.load(args.config)
        stages = plan(config)
    except (OSError, ValueError, TypeError) as error:
        raise PromptError(f"--config: {error}") from None
    lines, problems = report(stages, args.gpus, args.gpu_memory, args.shard, args.headroom, measured)
    print(f"{config.lm} + {config.vision} -> {config.stable_diffusion}, {args.gpus} GPU(s) of {args.gpu_memory:g} GiB")
    print("\n".join(lines))
    if problems:
        print("does not fit:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


def _plan_serving(args: argparse.Namespace) -> int:
    from .serve_plan import plan, report

    try:
        sizes = tuple(float(x) for x in args.gpu_sizes.split(","))
    except ValueError:
        raise PromptError(f"--gpu-sizes: comma-separated numbers of GB, got {args.gpu_sizes!r}") from None
    if not sizes or min(sizes) <= 0 or args.size < 16 or not 0 <= args.reference_images <= 3:
        raise PromptError("--gpu-sizes must be positive, --size at least 16, --reference-images from 0 to 3")
    print("\n".join(report(plan(args.serve, sizes, side=args.size, images=args.reference_images))))
    return 0


def _memory_asked(args: argparse.Namespace) -> bool:
    return bool(args.offload or args.device_map or args.quantize or args.lora or args.group_blocks != 1)


def _serve(args: argparse.Namespace) -> int:
    # The app lives in the `ui` package beside the library; the library itself never imports Gradio.
    from ui.launch import launch

    launch(args.host, args.port, args.model, runtime_options(args) if _memory_asked(args) else None)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from .evaluate import BENCHMARKS, EvalConfig, Evaluator, format_report

    benchmarks = BENCHMARKS if args.benchmarks is None else tuple(b.strip() for b in args.benchmarks.split(",") if b.strip())
    unknown = sorted(set(benchmarks) - set(BENCHMARKS))
    if unknown or not benchmarks:
        raise PromptError(f"--benchmarks: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(BENCHMARKS)}")
    if args.steps is not None and args.steps < 1:
        raise PromptError(f"--steps must be at least 1, got {args.steps}")
    if args.out and not Path(args.out).parent.is_dir():
        raise PromptError(f"--out: no such directory: {Path(args.out).parent}")
    runtime, model = _load_runtime(args)
    if runtime.info.family != "MultiFusionPipeline":
        raise PromptError(f"eval scores pictures of the shapes world, which only MultiFusion models draw; {model} is a "
                          f"{runtime.info.family}")  # fmt: skip
    steps = runtime.default_steps if args.steps is None else args.steps
    if args.guidance_end is not None and not 0 <= args.guidance_end <= 1:
        raise PromptError(f"--guidance-end must be from 0 to 1, got {args.guidance_end}")
    config = EvalConfig(quick=args.quick, steps=steps, guidance=args.guidance, guidance_end=args.guidance_end, seed=args.seed)
    report = Evaluator(runtime.pipe, config, model, log=lambda m: print(m, file=sys.stderr)).run(benchmarks)
    print(format_report(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.out}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from .metadata import generation_record, save_png
    from .model_card import model_label
    from .runtime import GenerationSettings, image_seed, pick_device
    from .syntax import parse_prompt

    prompt = _read_prompt(args.prompt, args.image)
    negative = parse_prompt(args.negative).validate(allow_empty=True) if args.negative else None
    settings = GenerationSettings(
        steps=args.steps, guidance=args.guidance, seed=args.seed, width=args.width, height=args.height,
        num_images=args.num_images, negative=negative, manipulate=args.manipulate, auto_balance=args.balance,
    )  # fmt: skip
    if args.device is not None and not args.device.strip():
        raise PromptError("--device must name a device: cpu, cuda, cuda:N or mps")
    settings.validate()  # cheap checks now; sizes against the model's limits once it is loaded
    paths = _output_paths(args.out, args.num_images, args.mkdir)
    pick_device(args.device)  # an unknown or missing device is an error before the model loads

    runtime, model = _load_runtime(args)
    model = model_label(model)  # outputs name the model, never the server's path to it
    settings = runtime.complete(settings)
    images = runtime.generate(prompt, settings)
    for index, (image, path) in enumerate(zip(images, paths)):
        record = generation_record(prompt, settings.record(), model, image_index=index, image_seed=image_seed(args.seed, index),
                                   **runtime.record_facts())  # fmt: skip
        try:
            save_png(image, path, record)
        except OSError as error:
            raise PromptError(f"--out: cannot write {path} ({error.strerror or type(error).__name__})") from None
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except MultiFusionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
