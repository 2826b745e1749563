"""Memory modes: how a pipeline is placed when it does not fit a GPU whole. Each is a diffusers/accelerate feature.

| `RuntimeOptions` | what it does | applies to |
|---|---|---|
| `offload="model"` | one component on the GPU at a time (`enable_model_cpu_offload`) | any device |
| `offload="group"` / `"group-leaf"` | groups of blocks (or single layers) visit the GPU in turn, prefetched on a CUDA stream (`enable_group_offload`) | any device |
| `offload="sequential"` | one layer at a time (`enable_sequential_cpu_offload`) | an accelerator |
| `device_map="balanced"` | the components spread over several GPUs (diffusers' pipeline `device_map`) | 2 or more CUDA GPUs |
| `quantize="8bit"` / `"4bit"` | bitsandbytes weights for the denoiser and the text encoder | CUDA, the `quant` extra |
| `quantize="int8wo"` | torchao int8 weight-only weights | any device, the `quant` extra |

Offload on a CPU runs (and gives the same image) but saves nothing: it is there to be tested. Every combination
that cannot work is refused before anything loads, with the reason.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from .errors import PromptError

OFFLOADS = ("model", "group", "group-leaf", "sequential")
QUANTIZATIONS = {  # name: (the backend's package, its config's arguments)
    "8bit": ("bitsandbytes", {"load_in_8bit": True}),
    "4bit": ("bitsandbytes", {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": torch.bfloat16}),
    "int8wo": ("torchao", {}),
}
DEVICE_MAPS = ("balanced",)
EXTRA = "pip install 'multifusion[quant]'"


def check(offload: str | None, quantize: str | None, device_map: str | None, device: torch.device) -> None:
    """Refuse, with the reason, a memory mode that does not apply to `device` or a combination that cannot work."""
    if offload is not None and offload not in OFFLOADS:
        raise PromptError(f"offload must be one of {', '.join(OFFLOADS)}, got {offload!r}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise PromptError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    if device_map is not None and device_map not in DEVICE_MAPS:
        raise PromptError(f"device_map must be one of {', '.join(DEVICE_MAPS)}, got {device_map!r}")
    if offload == "sequential" and device.type == "cpu":
        raise PromptError("sequential offload moves layers to an accelerator one at a time; on a CPU there is none (use no offload)")
    if device_map is not None:
        gpus = torch.cuda.device_count() if device.type == "cuda" else 0
        if gpus < 2:
            raise PromptError(f"device_map={device_map!r} splits the model over several GPUs; this machine has {gpus} CUDA GPU(s)")
        if offload is not None:
            raise PromptError("device_map already places every component; it cannot be combined with offload")
    if quantize is not None:
        package, _ = QUANTIZATIONS[quantize]
        if importlib.util.find_spec(package) is None:
            raise PromptError(f"quantize={quantize!r} needs {package}, an optional extra: {EXTRA}")
        if package == "bitsandbytes" and device.type != "cuda":
            raise PromptError(f"bitsandbytes {quantize} weights need a CUDA GPU; on {device.type} use quantize='int8wo' (torchao)")
        if offload == "sequential":
            raise PromptError("quantized weights cannot be offloaded layer by layer; use offload='model' or 'group'")


def quantization_config(quantize: str | None, components: dict[str, str]) -> Any:
    """diffusers' `PipelineQuantizationConfig` for `components` ({name: "diffusers" or "transformers", the library
    that built it}): each gets its own library's config of the backend, or None when nothing is quantized."""
    if quantize is None:
        return None
    import diffusers
    import transformers
    from diffusers.quantizers import PipelineQuantizationConfig

    package, kwargs = QUANTIZATIONS[quantize]
    libraries = {"diffusers": diffusers, "transformers": transformers}
    if package == "torchao":
        from torchao.quantization import Int8WeightOnlyConfig

        def config(library: str) -> Any:
            return libraries[library].TorchAoConfig(Int8WeightOnlyConfig())
    else:

        def config(library: str) -> Any:
            return libraries[library].BitsAndBytesConfig(**kwargs)

    return PipelineQuantizationConfig(quant_mapping={name: config(library) for name, library in components.items()})


def place(pipe: Any, device: torch.device, offload: str | None, group_blocks: int = 1, device_mapped: bool = False) -> None:
    """Put `pipe` on `device` as `offload` says (None: whole). A device-mapped pipeline is placed already."""
    if device_mapped:
        return
    if offload is None:
        pipe.to(device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        streamed = device.type == "cuda"  # prefetch the next group while one computes
        pipe.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                  offload_type="block_level" if offload == "group" else "leaf_level",
                                  num_blocks_per_group=group_blocks if offload == "group" else None, use_stream=streamed)  # fmt: skip
