"""The repository deploys as a Hugging Face Space: front matter, entry point, requirements, and no file the Hub
would refuse (over 10 MB outside LFS)."""

import re
import subprocess
import tomllib
from pathlib import Path

import gradio
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HUB_LIMIT = 10 * 1024 * 1024


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text[4 : text.index("\n---", 4)])


def test_the_front_matter_names_a_gradio_app_that_exists():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).is_file()
    assert meta["sdk_version"].split(".")[0] == gradio.__version__.split(".")[0]  # the major version the app is built on
    assert str(meta["python_version"]) == "3.11"
    assert "launch()" in (ROOT / meta["app_file"]).read_text()


def test_requirements_hold_every_dependency_and_a_cpu_torch_for_cpu_spaces():
    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    names = {re.split(r"[<>=\[ ]", line)[0].lower() for line in requirements if line and not line.startswith(("#", "-"))}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {re.split(r"[<>=\[ ]", d)[0].lower() for d in project} <= names
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert any(line.startswith("torch==") and line.endswith("+cpu") for line in requirements)


def test_every_file_over_10_mb_is_covered_by_an_lfs_rule():
    try:
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    large = [f.decode() for f in files if f and (ROOT / f.decode()).is_file() and (ROOT / f.decode()).stat().st_size > HUB_LIMIT]
    assert large, "the shipped weights are over 10 MB: this test must see them"
    attributes = subprocess.run(["git", "check-attr", "filter", "--", *large], cwd=ROOT, capture_output=True, text=True, check=True)
    assert all(line.endswith(": filter: lfs") for line in attributes.stdout.splitlines()), attributes.stdout
