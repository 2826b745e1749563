"""`multifusion generate` end to end, in a subprocess as a user runs it."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from multifusion.images import image_digest
from multifusion.metadata import read_record
from multifusion.testing import tiny_pipeline


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    tiny_pipeline().save_pretrained(path)
    return path


def run(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "multifusion.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_generate_writes_pngs_with_the_full_record(model_dir, tmp_path, red_image):
    red_image.save(tmp_path / "red.png")
    result = run(
        "generate", "a photo of <ref> in (vivid red:1.5)", "--image", f"ref={tmp_path / 'red.png'}", "--model",
        str(model_dir), "--steps", "2", "--seed", "7", "--num-images", "2", "--negative", "blurry", "--out",
        str(tmp_path / "out.png"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    paths = [tmp_path / "out-1.png", tmp_path / "out-2.png"]
    assert result.stdout.split() == [str(p) for p in paths]
    record = read_record(Image.open(paths[1]))
    segments = record["prompt"]["segments"]
    assert segments[1] == {"type": "image", "image": "sha256:" + image_digest(red_image), "weight": 1.0, "name": "ref"}
    assert segments[3] == {"type": "text", "text": "vivid red", "weight": 1.5}
    assert record["settings"]["seed"] == 7 and record["image_seed"] == 8 and record["settings"]["steps"] == 2
    assert record["scheduler"] == "dpm++2m"
    assert record["settings"]["negative"]["segments"][0]["text"] == "blurry"
    assert Image.open(paths[0]).size == (64, 64)


def test_json_prompt_with_local_path(model_dir, tmp_path, red_image):
    red_image.save(tmp_path / "red.png")
    prompt = {"segments": [{"type": "text", "text": "ein roter Kreis", "lang": "de"}, {"type": "image", "image": "red.png"}]}
    result = run("generate", json.dumps(prompt), "--model", str(model_dir), "--steps", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "multifusion.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["(red:99)"], "weight 99.0 is outside [0, 5]"),
        (["<cat>"], "image <cat>"),
        (["a <x>", "--image", "x=missing.png"], "no such file"),
        (["a <x>", "--image", "x=bad.png"], "not a readable image"),
        (["a", "--steps", "-3"], "steps must be"),
        (["a", "--width", "33"], "multiple of 4"),
        (["a", "--out", "out.jpg"], ".png"),
        (["{not json"], "not valid JSON"),
        (["a", "--model", "no/such/dir"], "cannot load"),
        (["a", "--steps", "many"], "invalid int value"),
        (["a", "--image", "novalue"], "NAME=PATH"),
        (["a", "--scheduler", "plms"], "--scheduler: unknown 'plms'; choose one of dpm++2m"),
    ],
)
def test_bad_input_prints_one_line_and_exits_2(model_dir, tmp_path, args, message):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    if "--model" not in args:
        args = [*args, "--model", str(model_dir)]
    result = run("generate", *args, "--steps" if "--steps" not in args else "--seed", "1", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.png")) or {p.name for p in tmp_path.glob("*.png")} == {"bad.png"}
