"""Build a small byte-level BPE tokenizer locally (no hub), for test models and the shapes-world LM.

Byte-level BPE covers every Unicode string, so German umlauts, French accents and Spanish tildes never become
unknown tokens, whatever the training corpus held.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}

# Enough text in the five languages that merges form; the shapes world trains on its own captions instead.
SAMPLE_CORPUS = (
    "a photo of a red circle and a blue star on the left",
    "ein Foto von einem roten Kreis und einem blauen Stern links",
    "une photo d'un cercle rouge et d'une étoile bleue à gauche",
    "una foto di un cerchio rosso e una stella blu a sinistra",
    "una foto de un círculo rojo y una estrella azul a la izquierda",
    "a large green square, a small yellow triangle, a purple heart, an orange shape in black",
)


def build_tokenizer(corpus: Iterable[str] = SAMPLE_CORPUS, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `corpus` and wrap it as a transformers fast tokenizer."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, **SPECIAL_TOKENS)
