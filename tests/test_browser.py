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
def page(browser, live_app, request):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    open_studio(page, live_app[0])
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:  # what the page showed, for CI's artefacts
        page.screenshot(path=str(SHOTS / f"failed-{request.node.name}.png"), full_page=True)
        print(f"studio at failure: {len(live_app[1].line)} jobs in line")
    page.close()


def open_studio(page, url):
    page.goto(url)
    page.wait_for_selector(".mf-card", timeout=30000)


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
    page.get_by_text("Not a readable image: broken.png.").wait_for(timeout=10000)  # said at once, no broken card
    assert page.locator(".mf-card-image").count() == 0

    page.click("#mf-generate")
    page.wait_for_selector("#mf-gallery img", timeout=60000)
    shown = page.locator("#mf-gallery img").count()
    page.locator(".mf-text").nth(0).fill("")  # a refused request changes nothing else: the pictures stay
    page.click("#mf-generate")
    page.get_by_text("segment 1 (text) is empty").last.wait_for(timeout=30000)
    assert page.locator("#mf-gallery img").count() == shown and "Error" not in page.locator("#mf-gallery").inner_text()


def test_the_cost_ceiling_and_an_examples_seed_are_said_before_they_matter(page):
    assert "a run may cost up to 400 native-image steps" in page.locator("#mf-num-images").inner_text()
    page.get_by_text("de · ein blauer Stern").click()
    page.get_by_text("Example loaded with its seed, 2.").wait_for(timeout=10000)
    assert page.locator("#mf-size-note").inner_text().strip() == ""
    set_number(page, "mf-width", 128)  # above the native 64 px: the model tiles its scene, and the page says so
    page.locator("#mf-size-note").get_by_text("trained at 64×64 px").wait_for(timeout=10000)
    set_number(page, "mf-width", 64)
    page.wait_for_function("() => !document.querySelector('#mf-size-note').innerText.trim()", timeout=10000)


def test_examples_load_into_the_composer(page):
    page.get_by_text("images · [green heart] und [blue square]").click()
    page.wait_for_selector(".mf-card-image img")
    assert page.locator(".mf-card .mf-kind").all_inner_texts() == ["IMAGE 1", "TEXT 2", "IMAGE 3"]
    page.screenshot(path=str(SHOTS / "example.png"), full_page=True)


# --- daily use: keys, focus, drops, paste, reload, history, notices, small screens, a fair queue -----------------
def set_number(page, elem_id, value):
    """Type a value and wait until the component holds it: a freshly drawn tab may redraw once and drop it."""
    box = page.locator(f"#{elem_id} input[type=number]")
    slider = page.locator(f"#{elem_id} input[type=range]")
    shown = slider if slider.count() else box  # a slider's range shows the value it holds
    for _ in range(5):
        box.fill(str(value))
        box.press("Enter")
        try:
            playwright.expect(shown).to_have_value(str(value), timeout=2000)
            page.wait_for_timeout(300)
            playwright.expect(shown).to_have_value(str(value), timeout=100)  # and it stays
            return
        except AssertionError:
            continue
    playwright.expect(shown).to_have_value(str(value))


def captions(page, gallery="#mf-gallery"):
    page.wait_for_selector(f"{gallery} img", timeout=60000)
    return page.locator(f"{gallery} .caption-label").all_inner_texts()


def test_ctrl_enter_generates_with_a_new_random_seed_each_run(page, live_app):
    page.locator(".mf-text").nth(0).fill("a red circle")
    set_number(page, "mf-num-images", 1)
    page.keyboard.press("Control+Enter")
    first = captions(page)
    page.locator(".mf-text").nth(0).focus()
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"() => !document.querySelector('#mf-gallery')?.innerText.includes({first[0]!r})", timeout=60000)
    second = captions(page)
    assert first[0].startswith("seed ") and second[0].startswith("seed ") and first != second
    page.click("text=Reuse last seed")  # the last run's seed, to make it again (the box fills when the server answers)
    last = second[0].removeprefix("seed ")
    page.wait_for_function(f"() => document.querySelector('#mf-seed input[type=number]').value === {last!r}", timeout=10000)
    page.locator(".mf-text").nth(0).fill("")  # a mistake keeps the pictures already made
    page.keyboard.press("Control+Enter")
    page.get_by_text("segment 1 (text) is empty").first.wait_for(timeout=30000)
    assert captions(page) == second


def test_compare_tab_captions_show_language_similarity_and_seed_in_full(page):
    page.get_by_role("tab", name="Compare languages").click()
    page.get_by_role("button", name="Compare").click()
    labels = captions(page, "#mf-compare-gallery")
    page.screenshot(path=str(SHOTS / "compare.png"))
    assert [label.split(" · ")[0] for label in labels] == ["en", "de", "fr", "it", "es"]
    assert all(" · sim. " in label and " · seed " in label for label in labels)
    cut = page.evaluate("() => [...document.querySelectorAll('#mf-compare-gallery .caption-label')].filter((c) => c.scrollWidth > c.clientWidth).length")
    assert cut == 0  # captions wrap rather than end in "…"


def test_focus_stays_on_a_card_after_remove_and_duplicate(page):
    page.locator(".mf-text").nth(0).fill("one")
    page.click('.mf-card[data-index="0"] .mf-dup')
    assert page.evaluate("document.activeElement.closest('.mf-card')?.dataset.index") == "1"
    page.click('.mf-card[data-index="1"] .mf-del')
    assert page.evaluate("document.activeElement.closest('.mf-card')?.dataset.index") == "0"
    page.keyboard.press("Enter")  # the focused Remove button removes the last card; focus goes to "+ Text"
    assert page.evaluate("document.activeElement.classList.contains('mf-add-text')")


def test_a_file_dropped_on_a_card_goes_after_it_and_paste_works_anywhere(page):
    page.click(".mf-add-text")
    drop_file(page, '.mf-card[data-index="0"]', "blue.png", png_bytes((30, 90, 220)))
    page.wait_for_selector(".mf-card-image img")
    assert page.locator(".mf-card .mf-kind").all_inner_texts() == ["TEXT 1", "IMAGE 2", "TEXT 3"]
    page.locator("#mf-negative textarea, #mf-negative input").first.focus()  # outside the composer
    page.evaluate(
        """(b64) => { const dt = new DataTransfer(); const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            dt.items.add(new File([bytes], "pasted.png", {type: "image/png"}));
            document.activeElement.dispatchEvent(new ClipboardEvent("paste", {clipboardData: dt, bubbles: true})); }""",
        png_bytes((220, 30, 30)),
    )
    page.wait_for_function("() => document.querySelectorAll('.mf-card-image').length === 2")
    assert page.locator(".mf-card .mf-name").all_inner_texts() == ["blue", "pasted"]


def test_the_composition_survives_a_reload(page):
    page.locator(".mf-text").nth(0).fill("ein grüner Stern, nach dem Neuladen")
    page.reload()
    page.wait_for_selector(".mf-card")
    assert page.locator(".mf-text").nth(0).input_value() == "ein grüner Stern, nach dem Neuladen"


def test_unknown_words_get_a_gentle_notice_and_errors_show_their_text(page):
    page.locator(".mf-text").nth(0).fill("a cat on a sofa")
    notice = page.locator("#mf-vocabulary")
    notice.get_by_text("“cat”, “sofa”").wait_for(timeout=10000)
    assert "flat shapes" in notice.inner_text()
    page.locator(".mf-text").nth(0).fill("a red circle")
    page.wait_for_function("() => !document.querySelector('#mf-vocabulary').innerText.includes('cat')")
    page.locator("#mf-negative textarea, #mf-negative input").first.fill("<cat>")  # an image name, as HTML would eat it
    page.click("#mf-generate")
    page.get_by_text("negative prompt, ").first.wait_for(timeout=30000)
    assert "<cat>" in page.get_by_text("negative prompt, ").first.inner_text()
    page.screenshot(path=str(SHOTS / "notice-and-error.png"))


def test_history_restores_an_earlier_image_with_a_click(page, live_app):
    page.locator(".mf-text").nth(0).fill("a blue star")
    set_number(page, "mf-num-images", 1)
    page.click("#mf-generate")
    (seed,) = captions(page)
    thumbnail = page.locator("#mf-history img").first.bounding_box()
    strip = page.locator("#mf-history").bounding_box()
    assert thumbnail["width"] <= 160 and strip["height"] <= 240, (thumbnail, strip)  # a strip of thumbnails, not a wall
    page.locator(".mf-text").nth(0).fill("something else")
    page.locator("#mf-history img").first.click()
    page.get_by_text("Restored the composition").first.wait_for(timeout=30000)
    assert page.locator(".mf-text").nth(0).input_value() == "a blue star"
    assert page.locator("#mf-seed input[type=number]").input_value() == seed.removeprefix("seed ")


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 720}, {"width": 390, "height": 844}], ids=["laptop", "phone"])
def test_generate_is_reachable_without_scrolling(browser, live_app, viewport):
    page = browser.new_page(viewport=viewport)
    open_studio(page, live_app[0])
    box = page.locator("#mf-generate").bounding_box()
    page.screenshot(path=str(SHOTS / f"reach-{viewport['width']}.png"))
    page.close()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]


@pytest.fixture
def slow_model(live_app):
    """Each U-Net call of the live app takes 50 ms longer, as on a big model, so that jobs can be caught running."""
    import time

    unet = live_app[1].runtime.pipe.unet
    original = unet.forward
    unet.forward = lambda *a, **k: time.sleep(0.05) or original(*a, **k)
    yield
    unet.forward = original


def two_visitors(browser, url):
    """Two browser contexts on the studio: two visitors sharing its one queue."""
    pages = [browser.new_page(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    for page in pages:
        open_studio(page, url)
    return pages


def outputs_of(studio, text):
    return [p for p in studio.output_dir.glob("*.png") if any(s.get("text") == text for s in read_record(Image.open(p))["prompt"]["segments"])]


def start_long_job(page, text):
    page.locator(".mf-text").nth(0).fill(text)
    set_number(page, "mf-steps", 50)
    set_number(page, "mf-num-images", 8)
    page.click("#mf-generate")
    page.locator(".progress-text, .eta-bar").first.wait_for(timeout=30000)


def test_a_closed_tab_stops_its_job_and_the_next_visitor_runs(browser, live_app, slow_model):
    studio = live_app[1]
    a, b = two_visitors(browser, live_app[0])
    start_long_job(a, "a long job that nobody waits for")
    a.close(run_before_unload=True)
    b.locator(".mf-text").nth(0).fill("the next visitor")
    set_number(b, "mf-num-images", 1)
    set_number(b, "mf-steps", 2)
    b.click("#mf-generate")
    captions(b)
    b.close()
    assert outputs_of(studio, "a long job that nobody waits for") == []  # stopped, never finished
    assert len(outputs_of(studio, "the next visitor")) == 1


def test_cancel_while_queued_leaves_no_job_behind(browser, live_app, slow_model):
    studio = live_app[1]
    a, b = two_visitors(browser, live_app[0])
    start_long_job(a, "the job ahead")
    b.locator(".mf-text").nth(0).fill("a job cancelled while waiting")
    b.click("#mf-generate")
    b.get_by_text("queue:").first.wait_for(timeout=30000)  # waiting behind A's job
    b.keyboard.press("Escape")
    b.get_by_text("queue:").first.wait_for(state="hidden", timeout=30000)  # out of the queue at once
    a.keyboard.press("Escape")  # A cancels too: its progress goes, the queue is free
    a.locator(".progress-text, .eta-bar").first.wait_for(state="hidden", timeout=30000)
    a.locator(".mf-text").nth(0).fill("a job after the cancels")  # the queue is first in, first out: had B's job
    set_number(a, "mf-steps", 2)                                 # stayed in it, it would run before this one
    set_number(a, "mf-num-images", 1)
    a.click("#mf-generate")
    captions(a)
    for page in (a, b):
        page.close()
    assert outputs_of(studio, "a job cancelled while waiting") == [] and outputs_of(studio, "the job ahead") == []
    assert len(outputs_of(studio, "a job after the cancels")) == 1


def test_a_visitor_behind_a_big_job_is_told_what_is_ahead(browser, live_app, slow_model):
    studio = live_app[1]
    a, b = two_visitors(browser, live_app[0])
    start_long_job(a, "a big job ahead")
    b.locator(".mf-text").nth(0).fill("a small job behind it")
    set_number(b, "mf-num-images", 1)
    b.click("#mf-generate")
    note = b.locator("#mf-wait")
    note.get_by_text("1 job ahead of yours").wait_for(timeout=30000)
    b.screenshot(path=str(SHOTS / "waiting.png"))
    if studio.runtime.seconds_per_cost is not None:  # measured by an earlier job on this server
        assert "of work by what they cost" in note.inner_text()
    a.keyboard.press("Escape")
    captions(b)  # B runs once A's job stops; the note goes
    b.wait_for_function("() => !document.querySelector('#mf-wait').innerText.includes('ahead')", timeout=30000)
    for page in (a, b):
        page.close()
    assert len(studio.line) == 0


def test_refusals_and_a_double_click_leave_no_phantom_jobs(browser, live_app, slow_model):
    """Five refused requests and a double click from one visitor; then a lone visitor is told nothing is ahead."""
    studio = live_app[1]
    a, b = two_visitors(browser, live_app[0])
    card = a.locator(".mf-text").nth(0)
    refusals = [("", {}, "segment 1 (text) is empty"), ("x" * 3000, {}, "has 3000 characters"),
                ("a red circle", {"mf-steps": 100, "mf-num-images": 8}, "costs 800"),
                ("a red circle", {"mf-steps": 100, "mf-num-images": 5}, "costs 500"),
                ("a (red:9) circle", {"mf-steps": 2, "mf-num-images": 1}, "outside")]  # fmt: skip
    for text, numbers, message in refusals:
        card.fill(text)
        for elem_id, value in numbers.items():
            set_number(a, elem_id, value)
        a.click("#mf-generate")
        a.get_by_text(message).first.wait_for(timeout=30000)
    card.fill("a double click")
    a.dblclick("#mf-generate")
    captions(a)
    a.wait_for_function("() => !document.querySelector('.progress-text, .eta-bar')", timeout=30000)  # the job is over
    assert len(outputs_of(studio, "a double click")) == 1  # one job, not two

    b.locator(".mf-text").nth(0).fill("a lone visitor's long job")
    set_number(b, "mf-steps", 50)
    b.click("#mf-generate")
    b.locator(".progress-text, .eta-bar").first.wait_for(timeout=30000)  # running: its note was set at the click
    assert "ahead" not in b.locator("#mf-wait").inner_text()
    b.keyboard.press("Escape")
    b.locator(".progress-text, .eta-bar").first.wait_for(state="hidden", timeout=30000)
    for page in (a, b):
        page.close()
    assert studio.line.running() == (0, 0.0)


def in_view(page, selector):
    box = page.locator(selector).first.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] < height and box["y"] + box["height"] > 0


def test_on_a_phone_generate_brings_the_progress_into_view_and_one_tap_goes_back(browser, live_app, slow_model):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    open_studio(page, live_app[0])
    page.locator(".mf-text").nth(0).fill("a job watched on a phone")
    set_number(page, "mf-steps", 40)
    page.evaluate("window.scrollTo(0, 0)")  # back at the composer, with Generate in the bar at the bottom
    page.wait_for_function("() => window.scrollY === 0")
    assert not in_view(page, "#mf-gallery")  # the results are far below the composer
    page.click("#mf-generate")
    progress = ".progress-text, .eta-bar"
    page.locator(progress).first.wait_for(timeout=30000)
    page.wait_for_function("""() => { const r = document.querySelector('.progress-text, .eta-bar')?.getBoundingClientRect();
                                      return r && r.top < window.innerHeight && r.bottom > 0; }""", timeout=10000)  # fmt: skip
    page.screenshot(path=str(SHOTS / "phone-progress.png"))
    page.click("#mf-to-composer")
    page.wait_for_function("() => document.querySelector('#composer').getBoundingClientRect().top >= -5 && "
                           "document.querySelector('#composer').getBoundingClientRect().top < window.innerHeight", timeout=10000)  # fmt: skip
    page.keyboard.press("Escape")
    page.close()


def test_generate_is_a_few_tab_presses_from_the_last_card(page):
    """After the last card only the negative prompt, one stop per example, the restore drop zone and the narrow
    screens' ↑ come before Generate (it was 24 presses with Generate below the results)."""
    from ui.examples import load_examples

    page.locator(".mf-card .mf-weight-slider").last.focus()
    for presses in range(1, len(load_examples()) + 5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "mf-generate":
            break
    assert page.evaluate("document.activeElement.id") == "mf-generate", f"not reached in {presses} presses"


def test_a_nine_image_sweep_shows_every_image_and_caption(page):
    page.get_by_role("tab", name="Weight sweep").click()
    sweep = page.get_by_role("button", name="Sweep")
    sweep.wait_for()
    set_number(page, "mf-sweep-count", 9)
    sweep.click()
    page.wait_for_function("() => document.querySelectorAll('#mf-sweep-gallery .caption-label').length === 9", timeout=60000)
    labels = page.locator("#mf-sweep-gallery .caption-label").all_inner_texts()
    assert labels[0].startswith("weight 0.00") and labels[-1].startswith("weight 2.50")
    gallery = page.locator("#mf-sweep-gallery").bounding_box()
    page.screenshot(path=str(SHOTS / "sweep.png"), full_page=True)
    for image in page.locator("#mf-sweep-gallery img").all():  # both rows inside the gallery, none cut off
        box = image.bounding_box()
        assert box["y"] >= gallery["y"] and box["y"] + box["height"] <= gallery["y"] + gallery["height"] + 1
