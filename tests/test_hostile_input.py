"""Hostile input, round 2: nothing decoded before it is checked, incomplete images refused, no server path in any
output, bounded disk, and messages that quote the loaded model's real limits."""

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from multifusion import MultimodalPrompt, PromptError
from multifusion.images import decode_image, to_data_url
from multifusion.png_chunks import png_text
from multifusion.runtime import DEFAULT_MODEL, GenerationSettings, Runtime, RuntimeOptions
from ui import handlers


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, rows: int, text: dict[str, str] | None = None) -> bytes:
    """An RGB PNG whose header says width x height, holding `rows` rows of data."""
    raw = b"".join(b"\0" + b"\x80" * (width * 3) for _ in range(rows))
    texts = b"".join(chunk(b"tEXt", k.encode() + b"\0" + v.encode()) for k, v in (text or {}).items())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + texts
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


WHOLE = png(64, 64, 64)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A whole 64x64 JPEG whose frame header was patched to say width x height."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    "data, message",
    [
        (png(4096, 4096, 10), "its header says 4096x4096 but its data holds less"),
        (WHOLE[:-12], "ends before its IEND chunk"),
        (WHOLE[:-14], "broken IDAT chunk"),
        (jpeg_claiming(4096, 4096), "its header says 4096x4096 but its data holds less"),
    ],
    ids=["rows-missing", "no-end-chunk", "cut-in-a-checksum", "jpeg-header-patched"],
)
def test_an_image_that_is_not_whole_is_a_clear_error(data, message):
    with pytest.raises(PromptError, match=message):
        decode_image(data, 4096 * 4096)
    assert decode_image(WHOLE, 4096 * 4096).size == (64, 64)
    assert decode_image(jpeg_claiming(64, 64), 4096 * 4096).size == (64, 64)


def test_large_plain_jpegs_are_whole():
    """The JPEG floor (a bit per 8x8 block) refuses no real file: a blank 4000x3000 at quality 1, progressive and
    optimised (the fewest bits a Huffman-coded JPEG spends), decodes."""
    buffer = io.BytesIO()
    Image.new("L", (4000, 3000), 255).save(buffer, format="JPEG", quality=1, progressive=True, optimize=True)
    assert decode_image(buffer.getvalue(), 4096 * 4096).size == (1024, 768)


def test_icon_files_are_refused_from_their_header():
    """An ICO's directory may claim 256x256 over an embedded PNG of any size: it is refused before a decode."""
    icon = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(icon, format="ICO")
    with pytest.raises(PromptError, match="icon file"):
        decode_image(icon.getvalue(), 4096 * 4096)


def test_png_text_is_read_without_decoding_a_pixel():
    """A PNG that claims 13000x13000 over a few bytes of data: its text and size come from its chunks."""
    hostile = png(13000, 13000, 1, {"parameters": "a red circle\nSteps: 2, Seed: 1"})
    facts = png_text(io.BytesIO(hostile))
    assert facts.size == (13000, 13000) and facts.text["parameters"].startswith("a red circle")
    text, record = handlers.png_info(facts)
    assert text.startswith("a red circle") and record is None


def test_image_counts_are_checked_before_any_image_is_decoded(monkeypatch):
    decoded = []
    monkeypatch.setattr("multifusion.prompt.load_image", lambda *a, **k: decoded.append(1))
    big = to_data_url(Image.new("RGB", (8, 8)))
    with pytest.raises(PromptError, match="31 images; the limit is 8"):
        MultimodalPrompt.from_dict({"segments": [{"type": "image", "image": big}] * 31})
    with pytest.raises(PromptError, match="negative prompt, the prompt has 31 images"):
        handlers.settings_from({"negative": {"segments": [{"type": "image", "image": big}] * 31}})
    assert decoded == []


def test_a_huge_negative_text_is_refused_by_its_length():
    with pytest.raises(PromptError, match="20,000,000 characters; the limit is 8,000"):
        handlers.settings_from({"negative": "x" * 20_000_000})


def test_size_messages_quote_the_loaded_models_limits():
    runtime = Runtime.load(DEFAULT_MODEL, RuntimeOptions(device="cpu"))
    for width, message in ((4, "from 16 to 256, got 4"), (63, "multiple of 16 (from 16 to 256), got 63"), (512, "from 16 to 256")):
        with pytest.raises(PromptError, match=message.replace("(", r"\(").replace(")", r"\)")):
            runtime.complete(handlers.settings_from({"width": width}))  # the API's path: no limit quoted but the model's


def cli(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "multifusion.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_outputs_name_a_model_by_name_and_hash_never_by_its_server_path(tmp_path):
    from ui.launch import load_studio

    absolute = str(DEFAULT_MODEL.resolve())
    result = cli("generate", "a red circle", "--model", absolute, "--steps", "2", "--out", "x.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    chunks = Image.open(tmp_path / "x.png").text
    assert all(str(DEFAULT_MODEL.parent) not in value for value in chunks.values())
    assert "Model: multifusion-tiny@" in chunks["parameters"]
    studio = load_studio(absolute, RuntimeOptions(device="cpu"))
    assert studio.model_name.startswith("multifusion-tiny@") and "/" not in studio.model_name


def test_the_studio_keeps_a_bounded_folder_and_removes_it_at_exit(tmp_path):
    from multifusion.testing import tiny_pipeline

    studio = handlers.Studio(Runtime(tiny_pipeline(), RuntimeOptions(device="cpu")), "tiny", work_dir=tmp_path / "s", max_files=3)
    for seed in range(3):
        with studio.job("visitor", 1.0):
            handlers.generate(studio, MultimodalPrompt.of("a red circle"), GenerationSettings(steps=2, seed=seed, num_images=2))
    assert len(list(studio.output_dir.iterdir())) == 3

    code = "from ui.handlers import temporary_folder; print(temporary_folder('multifusion-studio-'))"
    made = Path(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip())
    assert made.name.startswith("multifusion-studio-") and not made.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["a red circle", "--device", ""], "--device must name a device"),
        (["a red circle", "--image", "a=A.png"], "the prompt never places <a>"),
        (['["a red circle"]'], "a JSON prompt is an object"),
        (["a red circle", "--model", "org/no-such-model"], "it is not a folder here, and the hub"),
    ],
)
def test_bad_cli_invocations_exit_2_with_one_error_line(tmp_path, args, message):
    Image.new("RGB", (16, 16)).save(tmp_path / "A.png")
    result = cli("generate", *args, "--out", "x.png", cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr


def test_request_bodies_are_bounded_and_refusals_do_not_echo_their_input(live_app):
    """Raw HTTP, as a hostile client sends it: an oversized body is refused from its length, and a body that does
    not match an endpoint's schema gets a short answer naming the field, not the input back."""
    import httpx

    from ui.http_limits import MAX_BODY_BYTES

    url = live_app[0].rstrip("/")
    too_big = httpx.post(f"{url}/gradio_api/queue/join", content=b"x" * (MAX_BODY_BYTES + 1),
                         headers={"content-type": "application/json"}, timeout=60)  # fmt: skip
    assert too_big.status_code == 413 and too_big.json() == {"error": "the request body is over 100 MiB"}
    echo = "E" * 1_000_000
    mismatched = httpx.post(f"{url}/gradio_api/queue/join", json={"data": echo, "fn_index": "not a number"}, timeout=60)
    assert mismatched.status_code == 422 and len(mismatched.content) < 300 and "EEEE" not in mismatched.text
    assert mismatched.json()["error"]  # names what was wrong


def _event_error(url: str, body: dict) -> str:
    """Join the queue with `body` over raw HTTP and return the error its completion carries."""
    import httpx

    joined = httpx.post(f"{url}/gradio_api/queue/join", json=body, timeout=60)
    assert joined.status_code == 200, joined.text
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": body["session_hash"]}, timeout=60) as events:
        for line in events.iter_lines():
            if '"process_completed"' in line:
                message = json.loads(line.removeprefix("data:"))
                assert message["success"] is False
                return message["output"]["error"]
    raise AssertionError("the event never completed")


def test_gradio_refusals_say_what_was_wrong_without_echoing_it(live_app):
    """Raw HTTP the way a hostile client speaks Gradio's own protocol: a server file path where an image belongs,
    a missing input, a bad `fn_index`, numbers and nesting no JSON reader takes. Each gets a short message naming
    the fault; none is `{"error": null}`, a bare 500 or an echo of the request."""
    import httpx

    url = live_app[0].rstrip("/")
    config = httpx.get(f"{url}/config", timeout=60).json()
    generate = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "generate")
    stolen = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}, "orig_name": "cat.png"}
    n_inputs = len(config["dependencies"][generate]["inputs"])
    error = _event_error(url, {"data": [stolen] * n_inputs, "fn_index": generate, "session_hash": "file"})
    assert error == "a file reference was refused: an event takes only files uploaded to this server"
    error = _event_error(url, {"data": [], "fn_index": generate, "session_hash": "missing"})
    assert error == f"the event takes {n_inputs} input values; the request gave 0"

    bad_index = httpx.post(f"{url}/gradio_api/queue/join", json={"data": [], "fn_index": 9999, "session_hash": "x"}, timeout=60)
    assert bad_index.status_code == 500 and bad_index.json() == {"error": "/gradio_api/queue/join: KeyError 9999"}
    for body, why in (('{"data": [' + "9" * 5000 + "]}", "Exceeds the limit (4300 digits)"),
                      ('{"data": ' + "[" * 1000 + "]" * 1000 + "}", "it is nested too deeply")):  # fmt: skip
        answer = httpx.post(f"{url}/gradio_api/queue/join", content=body, headers={"content-type": "application/json"}, timeout=60)
        assert answer.status_code == 400 and why in answer.json()["error"] and len(answer.content) < 200
    assert httpx.get(f"{url}/no-such-page", timeout=60).status_code == 404  # other HTTP errors unchanged


def _rss_mb() -> float:
    import gc

    gc.collect()
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the resident set size from /proc")
def test_memory_stays_flat_under_many_small_requests(live_app):
    """250 API calls, each from a new session the way a script without a client library sends them: after a
    warm-up of 50, 200 more grow the server's resident memory by less than 10 MB (Gradio alone kept a copy of the
    app's config per session, about 0.16 MB per request)."""
    import uuid

    import httpx

    url = live_app[0].rstrip("/")
    config = httpx.get(f"{url}/config", timeout=60).json()
    generate = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "generate")

    def call(seed: int) -> None:
        session = uuid.uuid4().hex
        body = {"data": [{"segments": [{"type": "text", "text": "a red circle"}]},
                         {"steps": 1, "seed": seed, "width": 32, "height": 32}], "fn_index": generate, "session_hash": session}  # fmt: skip
        assert httpx.post(f"{url}/gradio_api/queue/join", json=body, timeout=60).status_code == 200
        with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}, timeout=120) as events:
            completed = next(line for line in events.iter_lines() if '"process_completed"' in line)
        assert '"success":true' in completed, completed[:300]

    for seed in range(50):
        call(seed)
    before = _rss_mb()
    for seed in range(50, 250):
        call(seed)
    grown = _rss_mb() - before
    assert grown < 10, f"resident memory grew {grown:.1f} MB over 200 requests"


def test_tabs_keep_their_sessions_while_one_shot_callers_are_forgotten():
    """A session that opened a heartbeat (a browser tab) is never forgotten; of the others only the newest few."""
    import asyncio
    import threading
    from collections import OrderedDict
    from types import SimpleNamespace

    from ui.session_bound import SessionBound

    holder = SimpleNamespace(session_data=OrderedDict(), time_last_used={}, lock=threading.Lock())
    app = SimpleNamespace(get_blocks=lambda: SimpleNamespace(state_holder=holder))

    async def inner(scope, receive, send):
        holder.session_data[scope["session"]] = object()

    bound = SessionBound(inner, keep=3)
    request = lambda path, session: bound({"type": "http", "path": path, "app": app, "session": session}, None, None)  # noqa: E731
    asyncio.run(request("/gradio_api/heartbeat/tab", "tab"))
    for k in range(10):
        asyncio.run(request("/gradio_api/queue/join", f"api-{k}"))
    assert list(holder.session_data) == ["tab", "api-7", "api-8", "api-9"]
