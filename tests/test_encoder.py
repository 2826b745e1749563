"""The MultiFusion encoder and the prompt layout it reads."""

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, CLIPVisionConfig, LlamaConfig

from multifusion import ImageSegment, MultimodalPrompt, TextSegment
from multifusion.attention import IMAGE, SPECIAL, TEXT
from multifusion.encoder import MultiFusionEncoder
from multifusion.processor import layout_prompts
from multifusion.testing import tiny_encoder
from multifusion.tokenizer import build_tokenizer


def test_layout_marks_every_token_with_its_segment(shared_pipe, red_image):
    tokenizer = shared_pipe.tokenizer
    prompt = MultimodalPrompt((TextSegment("a photo of"), ImageSegment(red_image, 0.5), TextSegment(" at night", 2.0)))
    inputs = layout_prompts([prompt], tokenizer, image_tokens=4, max_length=48)
    n_first = len(tokenizer("a photo of", add_special_tokens=False).input_ids)
    n_last = len(tokenizer(" at night", add_special_tokens=False).input_ids)
    expected_ids = [-1] + [0] * n_first + [1] * 4 + [2] * n_last
    expected_kinds = [SPECIAL] + [TEXT] * n_first + [IMAGE] * 4 + [TEXT] * n_last
    length = len(expected_ids)
    assert inputs.segment_ids[0, :length].tolist() == expected_ids
    assert inputs.token_kinds[0, :length].tolist() == expected_kinds
    assert inputs.segment_ids[0, length:].eq(-1).all() and inputs.input_ids.shape == (1, 48)
    assert inputs.input_ids[0, 0] == tokenizer.bos_token_id
    assert inputs.segment_weights == [(1.0, 0.5, 2.0)] and len(inputs.images) == 1


def test_encode_returns_one_hidden_state_per_token_and_sees_images(shared_pipe, red_image, noise_image):
    encode = lambda *parts: shared_pipe.encode([MultimodalPrompt.of(*parts)]).embeds
    text_only = encode("a red circle")
    assert text_only.shape == (1, 48, 32) and torch.isfinite(text_only).all()
    assert not torch.allclose(text_only, encode("ein roter Kreis"))
    assert not torch.allclose(encode("a", red_image), encode("a", noise_image))


def test_multilingual_text_never_becomes_unknown_tokens():
    tokenizer = build_tokenizer()
    for text in ("ein großes Herz", "une étoile à gauche", "un corazón pequeño", "cuore arancione"):
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == text


def test_encoder_save_load_round_trip(tmp_path):
    encoder = tiny_encoder(vocab_size=300)
    encoder.save_pretrained(tmp_path)
    loaded = MultiFusionEncoder.from_pretrained(tmp_path)
    assert loaded.config.image_tokens == 4 and loaded.adapters is not None
    ids = torch.randint(0, 300, (2, 10))
    torch.testing.assert_close(encoder(ids), loaded(ids), atol=0, rtol=0)


def test_adapters_start_as_identity_and_then_take_effect():
    with_adapters = tiny_encoder(vocab_size=300)
    without = MultiFusionEncoder(**{**with_adapters.config, "adapter_dim": 0})
    without.load_state_dict({k: v for k, v in with_adapters.state_dict().items() if not k.startswith("adapters.")})
    ids = torch.randint(0, 300, (1, 12))
    torch.testing.assert_close(with_adapters(ids), without(ids), atol=0, rtol=0)
    torch.nn.init.normal_(with_adapters.adapters[0].up.weight)
    assert not torch.allclose(with_adapters(ids), without(ids))


def test_from_parts_fuses_pretrained_models(tmp_path):
    lm = AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=4, tie_word_embeddings=False))  # fmt: skip
    vision = AutoModel.from_config(CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
        num_hidden_layers=1, num_attention_heads=2))  # fmt: skip
    lm.save_pretrained(tmp_path / "lm")  # a local directory stands in for a hub id
    encoder = MultiFusionEncoder.from_parts(
        AutoModelForCausalLM.from_pretrained(tmp_path / "lm"), vision, image_tokens=4, max_length=16
    )
    assert torch.equal(encoder.lm.lm_head.weight, lm.lm_head.weight)
    assert encoder.embed_images(torch.randn(2, 3, 32, 32)).shape == (2, 4, 32)


def test_image_tokens_must_be_square():
    with pytest.raises(ValueError, match="perfect square"):
        MultiFusionEncoder(**{**tiny_encoder(vocab_size=300).config, "image_tokens": 5})


def test_a_prompt_encodes_the_same_alone_or_in_a_batch(shared_pipe, red_image):
    """Prompts are padded to a fixed length, so batch neighbours never change an encoding."""
    short = MultimodalPrompt.of("a red circle")
    long = MultimodalPrompt.of("a photo of", red_image, TextSegment(" and a large blue star on the right", 2.0))
    alone = shared_pipe.encode([short]).embeds
    batched = shared_pipe.encode([long, short])
    torch.testing.assert_close(batched.embeds[1:], alone, atol=1e-6, rtol=0)
    assert batched.unet_bias[1].eq(0).all()  # the neutral prompt's row carries no bias
