"""The prompt model, string syntax, JSON form and validation: pure Python, no torch."""

import base64
import io
import json
import math
import subprocess
import sys
import zlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from multifusion import ImageSegment, MultimodalPrompt, PromptError, PromptLimits, TextSegment
from multifusion import format_prompt, parse_prompt
from multifusion.checks import is_blank
from multifusion.images import load_image, to_data_url

RED = Image.new("RGB", (8, 8), "red")
BLUE = Image.new("RGB", (8, 8), "blue")


def test_prompt_modules_import_without_torch():
    code = "import sys, multifusion, multifusion.prompt, multifusion.syntax; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- string syntax ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("a red circle", [TextSegment("a red circle")]),
        ("a (red:1.5) circle", [TextSegment("a "), TextSegment("red", 1.5), TextSegment(" circle")]),
        ("(ein roter Kreis: 0.5 )", [TextSegment("ein roter Kreis", 0.5)]),
        ("(time 10:30:2)", [TextSegment("time 10:30", 2.0)]),
        (r"\(not a weight\) \<b\> a\\b", [TextSegment(r"(not a weight) <b> a\b")]),
        (r"C:\path", [TextSegment(r"C:\path")]),
        ("a photo of <red> at night", [TextSegment("a photo of "), ImageSegment(RED, 1.0, "red"), TextSegment(" at night")]),
        ("(<red>:0.7)(<blue>:0)", [ImageSegment(RED, 0.7, "red"), ImageSegment(BLUE, 0.0, "blue")]),
    ],
)
def test_parse_examples(text, expected):
    assert parse_prompt(text, {"red": RED, "blue": BLUE}).segments == tuple(expected)


@pytest.mark.parametrize(
    "text, message",
    [
        ("<dog>", "<dog>"),
        ("[a:b:0.5]", "prompt editing"),
        ("[cat:0.5]", "prompt editing"),
        ("a [red|blue] star", "alternation"),
        ("<lora:style:0.8>", "LoRA tags"),
    ],
)
def test_parse_errors_say_what(text, message):
    with pytest.raises(PromptError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        parse_prompt(text, {"red": RED})


# AUTOMATIC1111's own documented readings (modules/prompt_parser.py), and the others of the studio's issue
A1111 = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    (r"\(literal\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.573), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55), (", sun, ", 1.1), ("sky", 1.4641), (".", 1.1)]),
    ("[a blue star]", [("a blue star", 1 / 1.1)]),
    ("((a green heart))", [("a green heart", 1.21)]),
    ("a red circle BREAK a blue star", [("a red circle", 1.0), ("a blue star", 1.0)]),
    ("(red:1", [("red:1", 1.1)]),
    ("red)", [("red)", 1.0)]),
]  # fmt: skip


@pytest.mark.parametrize("text, expected", A1111)
def test_the_emphasis_grammar_reads_as_automatic1111_reads_it(text, expected):
    segments = parse_prompt(text).segments
    assert [s.text for s in segments] == [t for t, _ in expected]
    assert [s.weight for s in segments] == pytest.approx([w for _, w in expected])


def test_images_sit_inside_groups_and_break_is_a_plain_boundary():
    prompt = parse_prompt("((<red>)) [a <blue>] x BREAK y", {"red": RED, "blue": BLUE})
    assert [(type(s).__name__, s.text if isinstance(s, TextSegment) else s.name, round(s.weight, 4)) for s in prompt.segments] == [
        ("ImageSegment", "red", 1.21), ("TextSegment", " ", 1.0), ("TextSegment", "a ", 0.9091),
        ("ImageSegment", "blue", 0.9091), ("TextSegment", " x", 1.0), ("TextSegment", "y", 1.0)]  # fmt: skip


def test_format_keeps_adjacent_fragments_of_one_weight_apart():
    prompt = MultimodalPrompt((TextSegment("a "), TextSegment(" b"), TextSegment("BREAK (c)", 1.5), TextSegment("d", 1.5)))
    text, _ = format_prompt(prompt)
    assert text == r"(a :1.0)BREAK( b:1.0)(\BREAK \(c\):1.5)BREAK(d:1.5)"
    assert parse_prompt(text) == prompt


POOL = [Image.new("RGB", (4, 4), c) for c in ("red", "green", "blue")]
weights = st.floats(min_value=0, max_value=5, allow_nan=False)
text_segments = st.builds(TextSegment, st.text(min_size=1, max_size=20), weights)
image_segments = st.builds(
    ImageSegment, st.sampled_from(POOL), weights, st.sampled_from(["a", "cat_1", "x.y", "ref-2"])
)
prompts = st.lists(st.one_of(text_segments, image_segments), min_size=1, max_size=8).map(
    lambda segs: MultimodalPrompt(tuple(segs))
).filter(lambda p: not all(isinstance(s, TextSegment) and is_blank(s.text) for s in p.segments))  # a prompt says something


def _consistent_names(prompt):
    seen = {}
    return all(seen.setdefault(s.name, s.digest) == s.digest for s in prompt.segments if isinstance(s, ImageSegment))


@settings(max_examples=300, deadline=None)
@given(prompts)
def test_format_then_parse_round_trips(prompt):
    if not _consistent_names(prompt):
        return
    text, images = format_prompt(prompt)
    assert parse_prompt(text, images) == prompt


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab :1.5()<>\\\n_é"), max_size=30) | st.text(max_size=30))
def test_garbage_strings_raise_only_prompt_error(text):
    try:
        parse_prompt(text, {"a": RED}).validate()
    except PromptError:
        pass


# --- JSON ---------------------------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(prompts)
def test_json_round_trips(prompt):
    assert MultimodalPrompt.from_json(prompt.to_json()) == prompt


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
segment_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "video", 3])},
    optional={"text": json_values, "image": json_values, "weight": json_values, "lang": json_values, "x": json_values},
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({"segments": st.lists(segment_like | json_values, max_size=4)})))
def test_garbage_json_raises_only_prompt_error(data):
    try:
        MultimodalPrompt.from_json(json.dumps(data))
    except PromptError:
        pass


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", '{"segments": 5}', "[" * 100000 + "]" * 100000])
def test_malformed_json_is_a_prompt_error(text):
    with pytest.raises(PromptError):
        MultimodalPrompt.from_json(text)


def test_json_names_the_bad_segment():
    bad = {"segments": [{"type": "text", "text": "ok"}, {"type": "text", "text": "x", "wieght": 2}]}
    with pytest.raises(PromptError, match="segment 2 .*wieght"):
        MultimodalPrompt.from_dict(bad)


# --- validation -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "segments, message",
    [
        ([], "empty"),
        ([TextSegment("")], "segment 1 \\(text\\) is empty"),
        ([TextSegment("a", math.nan)], "must be a finite number"),
        ([TextSegment("a", math.inf)], "must be a finite number"),
        ([TextSegment("a", -0.5)], "outside"),
        ([TextSegment("a"), TextSegment("b", 5.5)], "segment 2 \\(text\\): weight 5.5"),
        ([TextSegment("a", True)], "must be a number"),
        ([TextSegment("a", 1.0, "xx")], "unknown language 'xx'"),
        ([TextSegment("a" * 3000)], "3000 characters"),
        ([TextSegment("a")] * 40, "40 segments"),
        ([ImageSegment(RED)] * 9, "9 images"),
        ([ImageSegment(Image.new("RGB", (5000, 5000)))], "5000x5000"),
    ],
)
def test_validation_names_segment_and_limit(segments, message):
    with pytest.raises(PromptError, match=message):
        MultimodalPrompt(tuple(segments)).validate()


def test_limits_are_configurable():
    MultimodalPrompt((TextSegment("a"),) * 40).validate(PromptLimits(max_segments=64))


def test_with_weight_and_content_key():
    prompt = parse_prompt("a <red>", {"red": RED})
    changed = prompt.with_weight(1, 0.0)
    assert changed.weights == (1.0, 0.0) and prompt.weights == (1.0, 1.0)
    assert prompt.content_key() != changed.content_key()
    assert prompt.content_key() == parse_prompt("a <r>", {"r": RED.copy()}).content_key()


# --- image references ---------------------------------------------------------------------------------------
def _png_header_only(width, height):
    """A valid PNG signature and header claiming a huge size, with one tiny compressed row: a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_data_url_round_trip_is_lossless():
    image = Image.effect_noise((16, 16), 50).convert("RGB")
    assert load_image(to_data_url(image), max_pixels=10**6).tobytes() == image.tobytes()


@pytest.mark.parametrize(
    "ref, message",
    [
        (_data_url(b"not an image"), "not a readable image"),
        (_data_url(_png_header_only(60000, 60000)), "the limit is 16,777,216 pixels"),
        (_data_url(_png_header_only(5000, 5000)), "5000x5000 pixels"),
        ("data:image/png;base64,@@@", "not valid base64"),
        ("/etc/passwd", "expected a data URL"),
        ("https://example.com/cat.png", "expected a data URL"),
        (12, "expected an image"),
    ],
)
def test_bad_image_references(ref, message):
    with pytest.raises(PromptError, match=message):
        load_image(ref, max_pixels=4096 * 4096)


def test_truncated_png_is_a_prompt_error():
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, format="PNG")
    with pytest.raises(PromptError, match="not a readable image"):
        load_image(_data_url(buffer.getvalue()[:200]), max_pixels=10**6)


def test_local_paths_only_when_allowed(tmp_path):
    path = tmp_path / "red.png"
    RED.save(path)
    assert load_image(str(path), max_pixels=100, allow_paths=True).size == (8, 8)
    with pytest.raises(PromptError):
        MultimodalPrompt.from_dict({"segments": [{"type": "image", "image": str(path)}]})
    prompt = MultimodalPrompt.from_dict({"segments": [{"type": "image", "image": str(path)}]}, allow_paths=True)
    assert prompt.segments[0].digest == ImageSegment(RED).digest
