"""Qwen2-VL's processor for text and images only, so the family loads where torchvision is missing.

transformers' `Qwen2VLProcessor` insists on a video processor, and its video processors need torchvision; a CPU
machine with torch alone cannot even build one. This subclass drops the video part and keeps everything else:
the same tokenizer, the same image processor, the same `__call__` for text and images.
"""

from __future__ import annotations

from typing import Any

from transformers import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin


class QwenVLImageTextProcessor(Qwen2VLProcessor):
    """`Qwen2VLProcessor` without videos: loads from any Qwen-Image `processor/` folder."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any) -> None:
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
