"""Build a small byte-level BPE tokenizer locally (no hub), for test models and the shapes-world LM.

Byte-level BPE covers every Unicode string, so German umlauts, French accents and Spanish tildes never become
unknown tokens, whatever the training corpus held. A small vocabulary learns the spellings of its corpus only
("blue" but not "BLUE", which falls apart into letters): `recasing_normalizer` re-spells other casings of known
words before tokenizing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
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


def recasing_normalizer(spellings: Iterable[str]) -> normalizers.Sequence:
    """A normalizer that re-spells a word typed in a casing the model never read as the model's own spelling:
    "BLUE STAR" -> "blue star", "Blue Star" -> "Blue star", "blauer stern" -> "blauer Stern".

    `spellings` are the words as the training text spells them (German nouns capitalised, the rest lower case).
    A word in capitals or in lower case against its spelling is re-spelt wherever it stands; a word capitalised
    against its spelling only after another word, since training text capitalises its first word. So every
    training caption passes unchanged and keeps its tokens. Of a word with two spellings ("rot", "Rot") both stay
    as typed, and its capitals become the lower-case one."""
    known = set(spellings)
    by_lower: dict[str, list[str]] = {}
    for word in sorted(known):
        by_lower.setdefault(word.lower(), []).append(word)
    # a word starts here / a space follows a word or a mark other than the openers ¿ ¡ and " = " (a restatement)
    anywhere, after_a_word = r"(?<![\p{L}\p{N}])", r"(?<=[^\s¿¡=]\s)"
    ends = r"(?![\p{L}\p{N}])"
    rules = []
    for lower, forms in sorted(by_lower.items()):
        target = lower if lower in forms else forms[0]
        capitalised = lower[:1].upper() + lower[1:]
        variants = {lower: anywhere, capitalised: after_a_word}
        if len(lower) > 1:
            variants[lower.upper()] = anywhere
        for variant, where in variants.items():
            if variant not in known:
                rules.append(normalizers.Replace(Regex(where + re.escape(variant) + ends), target))
    return normalizers.Sequence(rules)
