"""A hostile client against the live API: 1,000 generated requests to /generate and /compare, sent as raw HTTP
(gradio_client would clean some of them up first). Every answer is an image or a clear error; no answer shows an
object repr, a memory address, a traceback or a server path; the server keeps serving throughout."""

import base64
import io
import json
import os
import re
import sys
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

LEAKS = [re.compile(p) for p in (r"0x[0-9a-fA-F]{6,}", r"object at", r"Traceback", r"File \"/", r"site-packages",
                                 re.escape(os.getcwd()), re.escape(sys.prefix), r"/tmp/", r"/etc/", r"cache dir")]  # fmt: skip


def _png(size=(8, 8)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**400), max_value=10**400), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["\ud800", "\u200b\u200b", " \x00 ", "0", "true", "false", "1e999", "x" * 2000]),
)  # fmt: skip
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=6)  # fmt: skip
images = st.one_of(
    st.just(_png()), st.just(_png((1048576 // 64, 1))), st.just("data:image/png;base64,aGVsbG8="), st.just("/etc/passwd"),
    st.just("../../weights/multifusion-tiny/model_index.json"),
    st.fixed_dictionaries({"path": st.sampled_from(["x.png", "/etc/hostname", os.getcwd()]),
                           "meta": st.just({"_type": "gradio.FileData"})}),  # fmt: skip
    json_values,
)
segments = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("text"), "text": st.text(max_size=20) | scalars},
        optional={"weight": scalars | st.floats(0, 5), "lang": st.sampled_from(["en", "de", "xx", ""]) | scalars,
                  "name": scalars, "colour": scalars},
    ),  # fmt: skip
    st.fixed_dictionaries({"type": st.just("image"), "image": images}, optional={"weight": scalars, "name": scalars}),
    json_values,
)
prompts = st.one_of(st.fixed_dictionaries({"segments": st.lists(segments, max_size=3)}), json_values)
setting_values = st.fixed_dictionaries(
    {"steps": st.integers(1, 2) | scalars},
    optional={"guidance": scalars | st.floats(0, 10), "seed": scalars | st.integers(0, 2**33), "width": scalars,
              "height": scalars, "num_images": scalars | st.integers(0, 3), "negative": scalars | prompts,
              "manipulate": st.sampled_from(["both", "unet", "x"]) | scalars, "auto_balance": scalars, "tiles": scalars},
)  # fmt: skip
settings_any = st.one_of(setting_values, json_values)
texts = st.one_of(st.dictionaries(st.sampled_from(["en", "de", "fr", "it", "es", "xx", ""]), st.text(max_size=20) | scalars,
                                  max_size=3), json_values)  # fmt: skip


def call(base: str, endpoint: str, data: list) -> str:
    """POST to Gradio's call route and read the event stream: the raw answer a client sees."""
    body = json.dumps({"data": data}).encode()
    request = urllib.request.Request(f"{base}gradio_api/call/{endpoint}", body, {"Content-Type": "application/json"})
    try:
        event = json.loads(urllib.request.urlopen(request, timeout=60).read())["event_id"]
    except urllib.error.HTTPError as error:  # refused before queueing: its body is what the client sees
        return error.read().decode(errors="replace")
    return urllib.request.urlopen(f"{base}gradio_api/call/{endpoint}/{event}", timeout=120).read().decode(errors="replace")


def check(answer: str, sent: list) -> None:
    assert "event: complete" in answer or "event: error" in answer or '"detail"' in answer, answer[:300]
    request_text = json.dumps(sent)
    for leak in LEAKS:
        found = leak.search(answer)
        assert found is None or found.group(0) in request_text, f"{leak.pattern} in {answer[:400]}"


FUZZ = settings(max_examples=700, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@FUZZ
@given(prompt=prompts, values=settings_any)
def test_generate_answers_every_request_without_internals(live_app, prompt, values):
    check(call(live_app[0], "generate", [prompt, values]), [prompt, values])


@settings(FUZZ, max_examples=300)
@given(language_texts=texts, values=settings_any)
def test_compare_answers_every_request_without_internals(live_app, language_texts, values):
    check(call(live_app[0], "compare", [language_texts, values]), [language_texts, values])


@pytest.fixture(autouse=True, scope="module")
def still_serving_after(live_app):
    yield
    answer = call(live_app[0], "generate", [{"segments": [{"type": "text", "text": "a red circle"}]}, {"steps": 2}])
    assert "event: complete" in answer and "data:image/png;base64," in answer
