"""A multimodal prompt as Qwen2.5-VL reads it in Qwen-Image-Edit-Plus: the chat template's user turn, the prompt's
segments in their order, each image as "Picture k: <|vision_start|><|image_pad|>...<|vision_end|>" at its place.

    <|im_start|>system ... <|im_start|>user\\n | segment 0 | segment 1 | ... | <|im_end|>\\n<|im_start|>assistant\\n
    \\_______ the template's system part _______/                               \\________ its closing part _______/

Each segment is tokenized on its own, so its boundaries are exact, and every token carries its segment's id (-1
for the template). Upstream writes all the pictures first, then the text; a prompt whose images all come before
its text lays out token for token as upstream's (tested). The pipeline drops the system part's hidden states
(`prompt_template_encode_start_idx` of them) and conditions the transformer on the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus import CONDITION_IMAGE_SIZE, calculate_dimensions
from PIL import Image

from ...attention import IMAGE, SPECIAL, TEXT
from ...errors import PromptError
from ...prompt import ImageSegment, MultimodalPrompt

LOG = logging.getLogger(__name__)
PICTURE = "Picture {}: <|vision_start|>{}<|vision_end|>"  # upstream's label of the k-th image, k from 1
IMAGE_PAD = "<|image_pad|>"
MAX_PROMPT_TOKENS = 1024  # upstream's `tokenizer_max_length`: the user turn's longest


@dataclass
class ChatLayout:
    """One prompt laid out for the text encoder. T tokens in all; N images."""

    input_ids: torch.Tensor  # (1, T)
    segment_ids: torch.Tensor  # (1, T) the segment of each token, -1 for the template
    token_kinds: torch.Tensor  # (1, T) SPECIAL / TEXT / IMAGE
    pixel_values: torch.Tensor | None  # the images' patches, as the processor makes them
    image_grid_thw: torch.Tensor | None  # (N, 3)
    system_tokens: int  # the template's system part: dropped from the output


def condition_images(images: list[Image.Image], pipe) -> list[Image.Image]:
    """The images resized as upstream does before the VLM sees them (about 384x384, aspect kept)."""
    resized = []
    for image in images:
        width, height = calculate_dimensions(CONDITION_IMAGE_SIZE, image.width / image.height)
        resized.append(pipe.image_processor.resize(image, height, width))
    return resized


def template_parts(pipe) -> tuple[str, str]:
    """The chat template around the user's prompt: (system part up to the user turn, closing part)."""
    before, after = pipe.prompt_template_encode.split("{}")
    return before, after


def check_template(pipe) -> None:
    """Warn when the tokenizer does not make the template's system part exactly as many tokens as upstream drops:
    the transformer would then read template tokens as prompt, or lose the prompt's first tokens."""
    before, _ = template_parts(pipe)
    found = len(pipe.tokenizer(before, add_special_tokens=False)["input_ids"])
    if found != pipe.prompt_template_encode_start_idx:
        LOG.warning("this tokenizer makes the chat template's system part %d tokens, but the pipeline drops %d: "
                    "its prompt embeddings will be misaligned", found, pipe.prompt_template_encode_start_idx)  # fmt: skip


def layout_chat(prompt: MultimodalPrompt, pipe) -> ChatLayout:
    """Lay out `prompt` (already validated) in the chat template, images where the prompt puts them.

    Raises `PromptError` naming the segment that takes the user turn past `MAX_PROMPT_TOKENS` tokens."""
    tokenizer = pipe.tokenizer
    images = [s.image for s in prompt.segments if isinstance(s, ImageSegment)]
    pixel_values = grid = None
    pads: list[int] = []
    if images:
        vision = pipe.processor(text=[PICTURE.format(1, IMAGE_PAD) * len(images)], images=condition_images(images, pipe),
                                padding=True, return_tensors="pt")  # fmt: skip
        pixel_values, grid = vision["pixel_values"], vision["image_grid_thw"]
        merge = pipe.processor.image_processor.merge_size
        pads = [int(n) // merge**2 for n in grid.prod(-1)]

    before, after = template_parts(pipe)
    ids: list[int] = []
    segments: list[int] = []
    kinds: list[int] = []

    def add(text: str, segment: int, kind: int) -> None:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        ids.extend(piece)
        segments.extend([segment] * len(piece))
        kinds.extend([kind] * len(piece))

    add(before, -1, SPECIAL)
    system_tokens = len(ids)
    for index, segment in enumerate(prompt.segments):
        if isinstance(segment, ImageSegment):
            k = sum(isinstance(s, ImageSegment) for s in prompt.segments[:index])
            add(PICTURE.format(k + 1, IMAGE_PAD * pads[k]), index, IMAGE)
        else:
            add(segment.text, index, TEXT)
        if len(ids) - system_tokens > MAX_PROMPT_TOKENS:
            raise PromptError(f"segment {index + 1} takes the prompt to {len(ids) - system_tokens} tokens; this model reads at "
                              f"most {MAX_PROMPT_TOKENS} (an image takes {max(pads, default=0) + 8} or so): shorten the prompt")  # fmt: skip
    add(after, -1, SPECIAL)

    def row(values: list[int]) -> torch.Tensor:
        return torch.tensor([values], dtype=torch.long)

    return ChatLayout(row(ids), row(segments), row(kinds), pixel_values, grid, system_tokens)
