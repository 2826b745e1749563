"""`multifusion plan` on the bundled real fusion configs, offline: the components' architecture configs (as their
checkpoints publish them: widths, depths, heads, vocabularies) are written to a temporary folder in their on-disk
layout and the configs' hub ids are pointed there. With network access, `multifusion plan --config
multifusion/fusion/configs/NAME.json` reads the same configs from the hub.

    python benchmarks/fusion_plan.py [--gpus 1,8] [--gpu-memory 80] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import report
from multifusion.fusion.plan import GiB, FusionConfig, plan

CONFIGS = Path(__file__).resolve().parents[1] / "multifusion" / "fusion" / "configs"
SD_UNET = {"_class_name": "UNet2DConditionModel", "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
           "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"], "sample_size": 64,
           "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, "in_channels": 4, "out_channels": 4}  # fmt: skip
SD_VAE = {"_class_name": "AutoencoderKL", "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
          "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4, "latent_channels": 4}  # fmt: skip
ARCHITECTURES = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": {"unet": {**SD_UNET, "attention_head_dim": 8, "cross_attention_dim": 768},
                                                     "vae": SD_VAE},
    "stabilityai/stable-diffusion-2-1-base": {"unet": {**SD_UNET, "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024,
                                                       "use_linear_projection": True}, "vae": SD_VAE},
    "Qwen/Qwen2.5-1.5B": {"": {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                               "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True}},
    "meta-llama/Llama-3.2-1B": {"": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
                                     "tie_word_embeddings": True}},
    "google/siglip-base-patch16-224": {"": {"model_type": "siglip_vision_model", "hidden_size": 768, "intermediate_size": 3072,
                                            "num_hidden_layers": 12, "num_attention_heads": 12, "image_size": 224, "patch_size": 16}},
    "openai/clip-vit-large-patch14": {"": {"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
                                           "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 224, "patch_size": 14}},
}  # fmt: skip


def offline_copy(config_path: Path, root: Path) -> Path:
    """The fusion config with each reference pointing at a folder holding that component's config."""
    values = json.loads(config_path.read_text())
    for key in ("stable_diffusion", "lm", "vision"):
        folder = root / values[key].replace("/", "--")
        for sub, config in ARCHITECTURES[values[key]].items():
            (folder / sub).mkdir(parents=True, exist_ok=True)
            (folder / sub / "config.json").write_text(json.dumps(config))
        values[key] = str(folder)
    path = root / config_path.name
    path.write_text(json.dumps(values))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", default="1,8")
    parser.add_argument("--gpu-memory", type=float, default=80.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as root:
        for config_path in sorted(CONFIGS.glob("*.json")):
            for stage in plan(FusionConfig.load(offline_copy(config_path, Path(root)))):
                key = f"{config_path.stem} {stage.name}"
                per_gpu = {n: stage.memory(n) / GiB for n in (int(g) for g in args.gpus.split(","))}
                figures[key] = {"trainable_M": round(stage.trainable / 1e6, 1), "frozen_M": round(stage.frozen / 1e6, 1),
                                "activations_GiB": round(stage.activation_bytes / GiB, 2),
                                "per_gpu_GiB": {f"{n}_sharded" if n > 1 else "1": round(v, 1) for n, v in per_gpu.items()}}  # fmt: skip
                rows.append((key, f"trainable {stage.trainable / 1e6:.1f} M, frozen {stage.frozen / 1e6:.1f} M, activations "
                                  f"{stage.activation_bytes / GiB:.1f} GiB, per GPU " +
                                  ", ".join(f"{v:.1f} GiB ({n} GPU{'s sharded' if n > 1 else ''})" for n, v in per_gpu.items())))  # fmt: skip
    report(rows, figures, args.json)


if __name__ == "__main__":
    main()
