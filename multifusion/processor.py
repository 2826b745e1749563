"""Turn multimodal prompts into the encoder's inputs: token ids, image pixels, and the segment layout.

Layout of one prompt, padded to the encoder's fixed `max_length` (so a prompt's embedding never depends on
what else is in the batch, as with CLIP's 77 tokens in Stable Diffusion):

    [prefix] [tokens of segment 0] [image tokens of segment 1] ... [pad ... pad]

The prefix token (BOS) is never manipulated, so every attention row keeps at least one visible key even when a
segment's weight is 0. Segment structure travels explicitly as `segment_ids` (-1 for prefix and padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from .attention import IMAGE, SPECIAL, TEXT
from .errors import PromptError
from .prompt import ImageSegment, MultimodalPrompt, TextSegment


@dataclass
class EncoderInputs:
    """A batch of prompts laid out for `MultiFusionEncoder`. Shapes: B prompts, T = max_length, N images."""

    input_ids: torch.Tensor  # (B, T) long; image positions hold the pad id and are replaced by the image prefix
    segment_ids: torch.Tensor  # (B, T) long; -1 for prefix and padding
    token_kinds: torch.Tensor  # (B, T) SPECIAL / TEXT / IMAGE
    images: list  # N PIL images, in the order their tokens appear (row-major over the batch)
    segment_weights: list[tuple[float, ...]]  # per prompt, the weight of each segment

    @property
    def image_mask(self) -> torch.Tensor:
        return self.token_kinds == IMAGE


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """The (prefix, pad) token ids; LMs without a BOS or pad token fall back to EOS."""
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if prefix is None or pad is None:
        raise ValueError("the tokenizer needs a BOS, EOS or pad token to lay out prompts")
    return prefix, pad


def layout_prompts(
    prompts: Sequence[MultimodalPrompt],
    tokenizer: PreTrainedTokenizerBase,
    image_tokens: int,
    max_length: int,
) -> EncoderInputs:
    """Tokenize each text segment separately (segment boundaries stay exact) and reserve image positions.

    Raises `PromptError` naming the segment that pushes a prompt past `max_length` tokens.
    """
    prefix_id, pad_id = special_token_ids(tokenizer)
    texts = [s.text for p in prompts for s in p.segments if isinstance(s, TextSegment)]
    token_lists = iter(tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])

    batch = len(prompts)
    input_ids = torch.full((batch, max_length), pad_id, dtype=torch.long)
    segment_ids = torch.full((batch, max_length), -1, dtype=torch.long)
    token_kinds = torch.full((batch, max_length), SPECIAL, dtype=torch.long)
    images = []
    for row, prompt in enumerate(prompts):
        input_ids[row, 0] = prefix_id
        position = 1
        for index, segment in enumerate(prompt.segments):
            if isinstance(segment, ImageSegment):
                ids, kind = [pad_id] * image_tokens, IMAGE
                images.append(segment.image)
            else:
                ids, kind = next(token_lists), TEXT
            end = position + len(ids)
            if end > max_length:
                raise PromptError(
                    f"segment {index + 1} ({'image' if kind == IMAGE else 'text'}) takes the prompt to {end} tokens;"
                    f" the limit is {max_length} (an image takes {image_tokens}): shorten the prompt"
                )
            input_ids[row, position:end] = torch.tensor(ids, dtype=torch.long)
            segment_ids[row, position:end] = index
            token_kinds[row, position:end] = kind
            position = end
    return EncoderInputs(input_ids, segment_ids, token_kinds, images, [p.weights for p in prompts])
