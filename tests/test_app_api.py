"""The app's named API endpoints, driven with gradio_client against a live server on localhost."""

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from multifusion.images import to_data_url


def decode(url):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


@pytest.fixture(scope="module")
def client(live_app):
    return Client(live_app[0], verbose=False)


def generate(client, prompt, **settings):
    return client.predict(prompt=prompt, settings={"steps": 2, "guidance": 3.0, **settings}, api_name="/generate")


def test_generate_endpoint_with_a_multimodal_prompt(client, red_image):
    prompt = {"segments": [{"type": "text", "text": "a photo of", "lang": "en"},
                           {"type": "image", "image": to_data_url(red_image), "weight": 0.7}]}  # fmt: skip
    answer = generate(client, prompt, seed=11, num_images=2)
    assert len(answer["images"]) == 2 and decode(answer["images"][0]).shape == (64, 64, 3)
    record = answer["metadata"][1]
    assert record["image_seed"] == 12 and record["prompt"]["segments"][1]["weight"] == 0.7
    assert record["prompt"]["segments"][1]["image"].startswith("sha256:")


def test_compare_endpoint(client):
    answer = client.predict(texts={"en": "a red circle", "it": "un cerchio rosso"}, settings={"steps": 2},
                            api_name="/compare")  # fmt: skip
    assert set(answer["images"]) == {"en", "it"} and answer["similarity"]["en"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "prompt, settings, message",
    [
        ({"segments": []}, {}, "empty"),
        ({"segments": [{"type": "text", "text": "a", "weight": 1e9}]}, {}, "outside"),
        ({"segments": [{"type": "image", "image": "/etc/passwd"}]}, {}, "data URL"),
        ({"segments": [{"type": "image", "image": "data:image/png;base64,aGVsbG8="}]}, {}, "not a readable image"),
        ({"segments": "nope"}, {}, "must be a list"),
        ({"segments": [{"type": "text", "text": "a"}]}, {"steps": -1}, "steps"),
        ({"segments": [{"type": "text", "text": "a"}]}, {"colour": "red"}, "unknown setting"),
    ],
)
def test_bad_input_is_a_clear_error_and_the_server_keeps_serving(client, prompt, settings, message):
    with pytest.raises(Exception, match=message):
        client.predict(prompt=prompt, settings=settings, api_name="/generate")
    assert len(generate(client, {"segments": [{"type": "text", "text": "still here"}]})["images"]) == 1


@pytest.mark.parametrize("path", ["secret.png", "/etc/hostname"])
def test_a_server_file_path_as_gradio_filedata_is_refused_without_naming_server_folders(live_app, client, path):
    """A raw API call (gradio_client would upload the file itself) naming a server path as Gradio FileData:
    Gradio refuses it before our code runs, with a message naming the server's folders, which must not reach
    the client."""
    import json
    import os
    import urllib.request

    image = {"path": path, "meta": {"_type": "gradio.FileData"}}
    body = json.dumps({"data": [{"segments": [{"type": "image", "image": image}]}, {}]}).encode()
    call = urllib.request.Request(live_app[0] + "gradio_api/call/generate", body, {"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(call, timeout=30).read())["event_id"]
    answer = urllib.request.urlopen(f"{live_app[0]}gradio_api/call/generate/{event}", timeout=60).read().decode()
    assert "event: error" in answer
    assert os.getcwd() not in answer and "cache dir" not in answer and os.path.basename(path) not in answer, answer
    assert len(generate(client, {"segments": [{"type": "text", "text": "still here"}]})["images"]) == 1


def test_concurrent_requests_never_cross(live_app):
    """Different prompts and seeds at once: each result equals the same request made alone."""
    url = live_app[0]
    requests = [({"segments": [{"type": "text", "text": text}]}, seed) for text, seed in
                [("a red circle", 1), ("ein blauer Stern", 2), ("un cœur vert", 3), ("una stella nera", 4)]]  # fmt: skip
    alone = [decode(generate(Client(url, verbose=False), p, seed=s)["images"][0]) for p, s in requests]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda r: decode(generate(Client(url, verbose=False), r[0], seed=r[1])["images"][0]), requests))
    for a, b in zip(alone, together):
        assert np.array_equal(a, b)
    assert not np.array_equal(alone[0], alone[1])


def test_a_full_queue_answers_busy(red_image, tmp_path):
    from multifusion.runtime import Runtime, RuntimeOptions
    from multifusion.testing import tiny_pipeline
    from ui import Studio, build_demo

    from conftest import free_port

    studio = Studio(Runtime(tiny_pipeline(), RuntimeOptions(device="cpu")), "tiny", work_dir=tmp_path)
    demo = build_demo(studio, queue_size=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        slow = {"steps": 60, "guidance": 3.0, "num_images": 4}
        jobs = [client.submit(prompt={"segments": [{"type": "text", "text": "a"}]}, settings=slow, api_name="/generate")
                for _ in range(4)]  # fmt: skip
        errors = []
        for job in jobs:
            try:
                job.result(timeout=120)
            except Exception as error:  # the client raises its own error types
                errors.append(str(error))
        assert any("Queue is full" in e for e in errors), errors
        assert len(errors) < len(jobs)  # the ones that got in were served
    finally:
        demo.close()



def test_api_calls_waiting_in_the_queue_count_in_the_work_ahead(tmp_path):
    """API calls join the studio's waiting line only when they start; while they wait in Gradio's queue, a
    visitor who clicks Generate is still told about them."""
    import threading
    import time

    import gradio as gr

    from multifusion.runtime import Runtime, RuntimeOptions
    from multifusion.testing import tiny_pipeline
    from ui import Studio, build_demo
    from ui.demo import GPU
    from ui.queued_calls import queued_calls

    from conftest import free_port

    studio = Studio(Runtime(tiny_pipeline(), RuntimeOptions(device="cpu")), "tiny", work_dir=tmp_path)
    unet = studio.runtime.pipe.unet
    original, release = unet.forward, threading.Event()
    unet.forward = lambda *a, **k: release.wait(120) and original(*a, **k)  # the model holds until the test says
    demo = build_demo(studio)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        prompt, small = {"segments": [{"type": "text", "text": "a"}]}, {"steps": 3}
        waiting = lambda: queued_calls(demo, GPU, {"generate": lambda *_: 0.0, "compare": lambda *_: 0.0})[0]  # noqa: E731

        def wait_until(condition, what):
            deadline = time.monotonic() + 60
            while not condition():
                assert time.monotonic() < deadline, what
                time.sleep(0.1)

        calls = [client.submit(prompt=prompt, settings=small, api_name="/generate")]  # runs, held by the model
        wait_until(lambda: len(studio.line) == 1, "the first call never started")
        for call in [dict(prompt=prompt, settings=small, api_name="/generate"),
                     dict(texts={"en": "a", "de": "ein"}, settings=small, api_name="/compare"),
                     dict(prompt=prompt, settings={"steps": "many"}, api_name="/generate")]:  # fmt: skip
            calls.append(client.submit(**call))  # one at a time, so that they queue in this order
            wait_until(lambda: waiting() == len(calls) - 1, f"call {len(calls)} never queued")
        what_is_ahead = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "what_is_ahead")
        message, _ = what_is_ahead(gr.Request(session_hash="visitor"))  # a Generate click now
        assert message.startswith("**Waiting:** 4 jobs ahead of yours"), message  # the running call and 3 waiting
        assert queued_calls(demo, GPU, {"generate": lambda p, s: 1 / 0}) == (2, 0.0)  # unpriceable: counted, free
        release.set()
        for call in calls[:3]:
            call.result(timeout=120)  # all served after all
        with pytest.raises(Exception, match="steps"):
            calls[3].result(timeout=60)
    finally:
        release.set()
        unet.forward = original
        demo.close()


def test_api_pngs_travel_with_their_records_read_by_an_independent_parser(client, tmp_path):
    """The API's images are the studio's PNGs, records included: `sd-parsers` (a PNG-info reader no one here
    wrote) reads them as AUTOMATIC1111's, and the `multifusion` record restores the prompt."""
    from sd_parsers import ParserManager

    from multifusion.metadata import read_record

    answer = generate(client, {"segments": [{"type": "text", "text": "a red circle"}, {"type": "text", "text": " and a star", "weight": 1.4}]},
                      seed=21, negative="blurry, [dark]")  # fmt: skip
    path = tmp_path / "api.png"
    path.write_bytes(base64.b64decode(answer["images"][0].split(",", 1)[1]))
    info = ParserManager().parse(str(path))
    sampler = info.samplers[0]
    assert info.generator.value == "AUTOMATIC1111"
    assert [p.value for p in sampler.prompts] == ["a red circle( and a star:1.4)"]
    assert [p.value for p in sampler.negative_prompts] == ["blurry, (dark:0.9090909090909091)"]
    assert sampler.parameters == {"cfg_scale": "3.0", "seed": "21", "steps": "2"}
    assert read_record(Image.open(path)) == answer["metadata"][0]


def test_compare_refuses_more_than_one_image_per_language(client):
    with pytest.raises(Exception, match="one image per language"):
        client.predict(texts={"en": "a red circle"}, settings={"steps": 2, "num_images": 3}, api_name="/compare")
