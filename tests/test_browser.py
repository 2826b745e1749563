"""The app in a real browser (Playwright + Debian's Chromium): compose, drag, drop, weigh, generate, fail well.

Screenshots go to test-output/browser/. Skips, saying why, where Chromium or Playwright is missing; `.ci/run`
installs both, so CI runs these tests.
"""

import base64
import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from multifusion.metadata import read_record

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright to run browser tests")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
if not shutil.which(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run"]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[1] / "test-output" / "browser"


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_app):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(live_app[0])
    page.wait_for_selector(".mf-card", timeout=30000)
    yield page
    page.close()


def png_bytes(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def drop_file(page, selector, name, b64, mime="image/png"):
    transfer = page.evaluate_handle(
        """([name, b64, mime]) => { const dt = new DataTransfer();
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            dt.items.add(new File([bytes], name, {type: mime})); return dt; }""",
        [name, b64, mime],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_compose_by_dragging_and_dropping_then_generate(page, live_app):
    page.click(".mf-add-text")
    texts = page.locator(".mf-text")
    texts.nth(0).fill("a red circle")
    texts.nth(1).fill("ein blauer Stern")

    page.drag_and_drop('.mf-card[data-index="1"] .mf-handle', '.mf-gap[data-index="0"]')
    assert [texts.nth(i).input_value() for i in range(2)] == ["ein blauer Stern", "a red circle"]

    drop_file(page, '.mf-gap[data-index="1"]', "blue square.png", png_bytes((30, 90, 220)))
    page.wait_for_selector(".mf-card-image img")
    assert page.locator(".mf-card .mf-kind").all_inner_texts() == ["TEXT 1", "IMAGE 2", "TEXT 3"]
    assert page.locator(".mf-card-image .mf-name").inner_text() == "blue_square"

    slider = page.locator(".mf-card").nth(2).locator(".mf-weight-slider")
    slider.focus()
    page.keyboard.press("Home")
    assert page.locator(".mf-card").nth(2).locator(".mf-weight-value").inner_text() == "0.00"
    page.screenshot(path=str(SHOTS / "composed.png"), full_page=True)

    page.click("#mf-generate")
    page.wait_for_selector("#mf-gallery img", timeout=60000)
    page.screenshot(path=str(SHOTS / "generated.png"), full_page=True)
    assert page.locator("#mf-gallery img").count() >= 2

    newest = max(live_app[1].output_dir.glob("*.png"), key=lambda p: p.stat().st_mtime)
    segments = read_record(Image.open(newest))["prompt"]["segments"]
    assert [(s["type"], s.get("text"), s["weight"]) for s in segments] == [
        ("text", "ein blauer Stern", 1.0), ("image", None, 1.0), ("text", "a red circle", 0.0)
    ]


def test_keyboard_moves_and_card_buttons(page):
    page.locator(".mf-text").nth(0).fill("first")
    page.click(".mf-add-text")
    page.locator(".mf-text").nth(1).fill("second")
    page.locator('.mf-card[data-index="1"]').focus()
    page.keyboard.press("Alt+ArrowUp")
    assert [page.locator(".mf-text").nth(i).input_value() for i in range(2)] == ["second", "first"]
    page.click('.mf-card[data-index="0"] .mf-dup')
    assert page.locator(".mf-card").count() == 3
    page.click('.mf-card[data-index="2"] .mf-del')
    page.click('.mf-card[data-index="0"] .mf-down')
    assert [page.locator(".mf-text").nth(i).input_value() for i in range(2)] == ["second", "second"]


def test_bad_input_shows_a_clear_error_and_the_app_recovers(page):
    page.locator(".mf-text").nth(0).fill("")
    page.click("#mf-generate")
    page.get_by_text("segment 1 (text) is empty").first.wait_for(timeout=30000)
    page.screenshot(path=str(SHOTS / "error.png"))

    drop_file(page, '.mf-gap[data-index="0"]', "notes.txt", base64.b64encode(b"hello").decode(), "text/plain")
    assert "Only image files" in page.locator(".mf-notice").inner_text()

    page.locator(".mf-text").nth(0).fill("a green heart")
    drop_file(page, '.mf-gap[data-index="1"]', "broken.png", base64.b64encode(b"\x89PNG not really").decode())
    page.wait_for_selector(".mf-card-image")
    page.click("#mf-generate")
    page.get_by_text("segment 2 (image) is not a readable image file").first.wait_for(timeout=30000)
    page.click('.mf-card[data-index="1"] .mf-del')

    page.click("#mf-generate")
    page.wait_for_selector("#mf-gallery img", timeout=60000)


def test_examples_load_into_the_composer(page):
    page.get_by_text("images · [green heart] und [blue square]").click()
    page.wait_for_selector(".mf-card-image img")
    assert page.locator(".mf-card .mf-kind").all_inner_texts() == ["IMAGE 1", "TEXT 2", "IMAGE 3"]
    page.screenshot(path=str(SHOTS / "example.png"), full_page=True)
