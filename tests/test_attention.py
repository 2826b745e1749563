"""Attention manipulation: the meaning of a weight, in the encoder and in the U-Net's cross-attention."""

import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from multifusion import ImageSegment, MultimodalPrompt, TextSegment
from multifusion.attention import (
    IMAGE, SPECIAL, TEXT, SegmentBiasProcessor, causal_bias_mask, install_segment_bias, key_bias, token_factors,
)


def test_factors_follow_segments_and_skip_neutral():
    segment_ids = torch.tensor([[-1, 0, 0, 1, 1, -1]])
    kinds = torch.tensor([[SPECIAL, TEXT, TEXT, TEXT, TEXT, SPECIAL]])
    assert token_factors(segment_ids, kinds, [(1.0, 1.0)]) is None
    factors = token_factors(segment_ids, kinds, [(0.0, 2.5)])
    assert factors.tolist() == [[1.0, 0.0, 0.0, 2.5, 2.5, 1.0]]
    assert key_bias(factors)[0, 1] == -math.inf and key_bias(factors)[0, 3] == pytest.approx(math.log(2.5))


def test_auto_balance_up_weights_text_when_images_dominate():
    segment_ids = torch.tensor([[-1, 0, 1, 1, 1, 1, 1, 1, 1, 1]])  # 1 text token, 8 image tokens
    kinds = torch.tensor([[SPECIAL, TEXT] + [IMAGE] * 8])
    factors = token_factors(segment_ids, kinds, [(1.0, 1.0)], auto_balance=True)
    assert factors[0, 1] == 8.0 and factors[0, 2:].eq(1.0).all()
    assert token_factors(segment_ids, kinds, [(1.0, 1.0)], auto_balance=False) is None
    # the user's weight multiplies on top of the balance
    assert token_factors(segment_ids, kinds, [(0.5, 1.0)], auto_balance=True)[0, 1] == 4.0


def test_processor_multiplies_post_softmax_weights():
    """softmax(s + log f) == renormalised f * softmax(s), checked against a hand-written attention."""
    torch.manual_seed(0)
    attn = Attention(query_dim=8, cross_attention_dim=6, heads=1, dim_head=8)
    attn.set_processor(SegmentBiasProcessor(AttnProcessor2_0()))
    x, context = torch.randn(1, 3, 8), torch.randn(1, 5, 6)
    factors = torch.tensor([[1.0, 0.0, 2.0, 0.5, 1.0]])
    out = attn(x, encoder_hidden_states=context, key_bias=key_bias(factors))

    q, k, v = attn.to_q(x), attn.to_k(context), attn.to_v(context)
    probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(8), dim=-1) * factors[:, None, :]
    probs = probs / probs.sum(-1, keepdim=True)
    expected = attn.to_out[0](probs @ v)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_processor_without_bias_is_bit_identical():
    torch.manual_seed(0)
    attn = Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4)
    x, context = torch.randn(2, 3, 8), torch.randn(2, 5, 6)
    plain = attn(x, encoder_hidden_states=context)
    attn.set_processor(SegmentBiasProcessor(attn.processor))
    assert torch.equal(plain, attn(x, encoder_hidden_states=context))


def test_unet_weight_zero_equals_removing_the_tokens(pipe):
    """Cross-attention has no positions: masking key j must equal deleting token j from the conditioning."""
    torch.manual_seed(0)
    unet = pipe.unet
    sample, context = torch.randn(1, 4, 32, 32), torch.randn(1, 6, 32)
    install_segment_bias(unet)
    bias = key_bias(torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 1.0]]))
    masked = unet(sample, 10, context, cross_attention_kwargs={"key_bias": bias}).sample
    removed = unet(sample, 10, context[:, [0, 1, 4, 5]]).sample
    torch.testing.assert_close(masked, removed, atol=1e-5, rtol=1e-4)


def test_encoder_weight_zero_hides_segment_from_other_tokens(pipe, red_image, noise_image):
    """With a segment at weight 0, changing its content changes no other token's hidden state."""
    def encode(image, weight):
        prompt = MultimodalPrompt((TextSegment("a photo of"), ImageSegment(image, weight), TextSegment(" at night")))
        return pipe.encode([prompt], manipulate="encoder", auto_balance=False).embeds[0]

    image_tokens = pipe.encoder.config.image_tokens
    span = slice(1 + len(pipe.tokenizer("a photo of", add_special_tokens=False).input_ids), None)
    hidden_red, hidden_noise = encode(red_image, 0.0), encode(noise_image, 0.0)
    others = torch.ones(hidden_red.shape[0], dtype=torch.bool)
    others[span.start : span.start + image_tokens] = False
    torch.testing.assert_close(hidden_red[others], hidden_noise[others], atol=1e-6, rtol=0)
    # at weight 1 the image is seen by the tokens after it
    assert not torch.allclose(encode(red_image, 1.0)[others], encode(noise_image, 1.0)[others], atol=1e-4)


def test_tokens_before_a_manipulated_segment_are_unchanged(pipe):
    def encode(weight):
        prompt = MultimodalPrompt((TextSegment("a red circle"), TextSegment(" and a blue star", weight)))
        return pipe.encode([prompt], manipulate="encoder").embeds[0]

    n_before = 1 + len(pipe.tokenizer("a red circle", add_special_tokens=False).input_ids)
    neutral, zero, raised = encode(1.0), encode(0.0), encode(3.0)
    torch.testing.assert_close(neutral[:n_before], zero[:n_before], atol=1e-6, rtol=0)
    torch.testing.assert_close(neutral[:n_before], raised[:n_before], atol=1e-6, rtol=0)
    assert not torch.allclose(neutral[n_before:], zero[n_before:], atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_masked_rows_and_large_factors_stay_finite_in_every_precision(dtype):
    """A weight of 0 on every key (a direct caller's bias; the pipeline always keeps BOS) and a weight of 100 give
    finite attention in half precision, in the U-Net's cross-attention and in the encoder's causal mask."""
    torch.manual_seed(0)
    attn = Attention(query_dim=8, cross_attention_dim=6, heads=1, dim_head=8).to(dtype)
    attn.set_processor(SegmentBiasProcessor(AttnProcessor2_0()))
    x, context = torch.randn(2, 3, 8, dtype=dtype), torch.randn(2, 5, 6, dtype=dtype)
    factors = torch.tensor([[0.0] * 5, [100.0, 0.0, 1.0, 5.0, 0.0]])
    assert torch.isfinite(attn(x, encoder_hidden_states=context, key_bias=key_bias(factors))).all()
    mask = causal_bias_mask(key_bias(factors), dtype)
    scores = torch.randn(2, 1, 5, 5, dtype=torch.float32).to(dtype) * 30 + mask
    assert torch.isfinite(torch.softmax(scores.float(), dim=-1)).all()
