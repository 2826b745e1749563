"""Tiny random MultiFusion pipelines, built offline in seconds, for tests, benchmarks and app tests.

Sizes follow diffusers' own test components (`block_out_channels=(4, 8)`, `norm_num_groups=2`); the tokenizer is
trained locally, so nothing is downloaded. The Qwen-Image-Edit-Plus family's tiny pipeline is
`families/qwen_image/tiny.py`; both are written to disk by `python -m multifusion.testing [FAMILY] OUT`.
"""

from __future__ import annotations

import sys

import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel
from transformers import CLIPVisionConfig, LlamaConfig
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from .encoder import MultiFusionEncoder
from .pipeline import MultiFusionPipeline
from .tokenizer import build_tokenizer

HIDDEN = 32


def tiny_encoder(vocab_size: int, seed: int = 0, image_tokens: int = 4, max_length: int = 48) -> MultiFusionEncoder:
    torch.manual_seed(seed)
    lm = LlamaConfig(
        vocab_size=vocab_size, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=max_length, tie_word_embeddings=False,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=HIDDEN, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4
    )
    return MultiFusionEncoder(
        lm_config=lm.to_dict(), vision_config=vision.to_dict(), image_tokens=image_tokens, adapter_dim=8,
        max_length=max_length,
    )  # fmt: skip


def tiny_pipeline(seed: int = 0) -> MultiFusionPipeline:
    """A complete MultiFusion pipeline with random weights: 64x64 images, CPU, float32."""
    tokenizer = build_tokenizer()
    encoder = tiny_encoder(len(tokenizer), seed)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=HIDDEN, norm_num_groups=2, attention_head_dim=2,
    )  # fmt: skip
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
    )  # fmt: skip
    scheduler = DPMSolverMultistepScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1
    )
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pipe = MultiFusionPipeline(vae, unet, scheduler, encoder, tokenizer, processor)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cpu")


USAGE = """usage: python -m multifusion.testing [FAMILY] OUTPUT_DIR
  saves a tiny random pipeline; FAMILY is multifusion (the default) or qwen-image-edit-plus"""


def main(argv: list[str]) -> int:
    if len(argv) == 1:
        argv = ["multifusion", *argv]
    if len(argv) != 2 or argv[0] not in ("multifusion", "qwen-image-edit-plus"):
        print(USAGE, file=sys.stderr)
        return 2
    family, out = argv
    if family == "qwen-image-edit-plus":
        from .families.qwen_image.tiny import save_tiny_qwen_image_edit_plus

        save_tiny_qwen_image_edit_plus(out)
        print(f"saved a tiny random Qwen-Image-Edit-Plus pipeline to {out}")
    else:
        tiny_pipeline().save_pretrained(out)
        print(f"saved a tiny random MultiFusion pipeline to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
