import numpy as np
import pytest
import torch
from PIL import Image

from multifusion.testing import tiny_pipeline


@pytest.fixture
def pipe():
    """A fresh tiny random pipeline (about a second to build); tests may change it."""
    return tiny_pipeline()


@pytest.fixture(scope="session")
def shared_pipe():
    """One tiny pipeline for tests that only read it."""
    return tiny_pipeline()


@pytest.fixture
def red_image():
    return Image.new("RGB", (40, 40), (220, 30, 30))


@pytest.fixture
def noise_image():
    return Image.effect_noise((40, 40), 60).convert("RGB")


def generate(pipe, prompt, seed=0, steps=2, **kwargs):
    """One image as a float array, fixed seed, few steps."""
    kwargs.setdefault("guidance_scale", 3.0)
    out = pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed), output_type="np", **kwargs)
    return out.images[0]


def differs(a, b, tolerance=1e-4):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()) > tolerance


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so that fixtures can tell whether the test failed."""
    outcome = yield
    setattr(item, f"report_{call.when}", outcome.get_result())


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_app(tmp_path_factory):
    """The whole app on the tiny random pipeline, served on a free localhost port."""
    from multifusion.runtime import Runtime, RuntimeOptions
    from ui import Studio, build_demo
    from ui.launch import launch_options

    from multifusion.model_card import ModelCard
    from multifusion.shapes.vocabulary import shapes_vocabulary

    card = ModelCard("flat shapes", ("en", "de", "fr", "it", "es"), shapes_vocabulary())  # as multifusion-tiny declares
    studio = Studio(Runtime(tiny_pipeline(), RuntimeOptions(device="cpu")), "tiny-test", card=card,
                    work_dir=tmp_path_factory.mktemp("studio"))  # fmt: skip
    demo = build_demo(studio)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/", studio
    demo.close()
