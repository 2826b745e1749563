"""A tiny random Qwen-Image-Edit-Plus pipeline, built offline in seconds, in diffusers' layout.

    python -m multifusion.testing qwen-image-edit-plus OUT

Every component is the real class at toy size (Qwen2.5-VL, `QwenImageTransformer2DModel`,
`AutoencoderKLQwenImage`, the flow-matching scheduler) and the tokenizer is trained here with `tokenizers`: a
byte-level BPE with Qwen2's pre-tokenizer and special tokens. Its corpus holds the pipeline's chat template, so
the template's system part is one token per word as in Qwen's own vocabulary: exactly the
`prompt_template_encode_start_idx` (64) tokens upstream drops. The model card declares a 64 px native size and
64x64 reference latents, so that tests run in seconds (the released models: 1024 px and 1024x1024).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImageEditPlusPipeline,
    QwenImageTransformer2DModel,
)
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer
from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

from ...tokenizer import SAMPLE_CORPUS
from .processor import QwenVLImageTextProcessor

# Qwen2's pre-tokenizer: words with their leading space, single digits, punctuation runs, newlines
QWEN_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")  # fmt: skip
HIDDEN = 32
CARD = """---
multifusion:
  draws: random noise (a tiny random Qwen-Image-Edit-Plus test model; the released weights draw anything)
  languages: [en, de, fr, it, es]
  native_size: 64
  default_steps: 4
  reference_pixels: 4096
---
# Tiny random Qwen-Image-Edit-Plus

Random weights at toy size, written by `python -m multifusion.testing qwen-image-edit-plus`, for tests only.
"""


def tiny_tokenizer() -> Qwen2Tokenizer:
    """A `Qwen2Tokenizer` with Qwen's special tokens, trained on the chat template and a multilingual sample."""
    template = QwenImageEditPlusPipeline(None, None, None, None, None, None).prompt_template_encode  # set in __init__
    corpus = [template.format(f"Picture {k}: {text}") for k in range(1, 4) for text in SAMPLE_CORPUS] * 8
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    bpe.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=state["vocab"], merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    return tokenizer


def tiny_qwen_image_edit_plus(seed: int = 0) -> QwenImageEditPlusPipeline:
    """The tiny pipeline, float32 on the CPU."""
    tokenizer = tiny_tokenizer()
    token = tokenizer.convert_tokens_to_ids
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=56 * 56 * 4, patch_size=14,
                                               merge_size=2, temporal_patch_size=2)  # fmt: skip
    processor = QwenVLImageTextProcessor(image_processor=image_processor, tokenizer=tokenizer)
    special = dict(bos_token_id=token("<|endoftext|>"), eos_token_id=token("<|im_end|>"), pad_token_id=token("<|endoftext|>"))
    config = Qwen2_5_VLConfig(
        text_config=dict(**special, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=2048,
                         rope_scaling={"mrope_section": [2, 1, 1], "rope_type": "default", "type": "default"}),
        vision_config=dict(depth=2, hidden_size=HIDDEN, intermediate_size=64, num_heads=2, out_hidden_size=HIDDEN,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1]),
        image_token_id=token("<|image_pad|>"), video_token_id=token("<|video_pad|>"),
        vision_start_token_id=token("<|vision_start|>"), vision_end_token_id=token("<|vision_end|>"),
        **special,
    )  # fmt: skip
    torch.manual_seed(seed)
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    torch.manual_seed(seed)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=HIDDEN, guidance_embeds=False, axes_dims_rope=(8, 4, 4),
    )  # fmt: skip
    torch.manual_seed(seed)
    vae = AutoencoderKLQwenImage(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                 temperal_downsample=[False, True, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)  # fmt: skip
    scheduler = FlowMatchEulerDiscreteScheduler(  # Qwen-Image's schedule: dynamic, exponential shift
        base_image_seq_len=256, base_shift=0.5, max_image_seq_len=8192, max_shift=0.9, shift=1.0, shift_terminal=0.02,
        time_shift_type="exponential", use_dynamic_shifting=True,
    )  # fmt: skip
    pipe = QwenImageEditPlusPipeline(scheduler, vae, text_encoder, tokenizer, processor, transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_qwen_image_edit_plus(out: str | Path, seed: int = 0) -> Path:
    """Write the tiny pipeline to `out` as upstream lays it out (the processor named `Qwen2VLProcessor`), with a
    model card declaring its small sizes."""
    out = Path(out)
    tiny_qwen_image_edit_plus(seed).save_pretrained(out)
    index_path = out / "model_index.json"
    index = json.loads(index_path.read_text())
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    processor_config = out / "processor" / "processor_config.json"
    if processor_config.is_file():
        config = json.loads(processor_config.read_text())
        config["processor_class"] = "Qwen2VLProcessor"
        processor_config.write_text(json.dumps(config, indent=2) + "\n")
    (out / "README.md").write_text(CARD, encoding="utf-8")
    return out
