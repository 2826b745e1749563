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
