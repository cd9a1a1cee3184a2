"""The interactive page in a real browser (headless Chromium over the DevTools pipe): the
3D view is drawn, the slider shows each snapshot's cells, clicking a cell shows its id and
the reason of the event that made it, an event in the list moves the slider to it, and
nothing is logged to the console as an error. Skipped where no Chromium binary exists
(Debian: ``apt-get install chromium``)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402

from morpho.rundir import read_jsonl  # noqa: E402
from morpho.viz.headless import Browser, find_chromium  # noqa: E402
from morpho.viz.page import render_page  # noqa: E402
from morpho.viz.runs import load_run  # noqa: E402
from morpho.viz.synthetic import synthetic_run  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        find_chromium() is None,
        reason="no Chromium binary on PATH (apt-get install chromium) to open the page in",
    ),
]
SIZE = (1200, 760)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run(tmp_path_factory.mktemp("page") / "run", n_cells=30, fan_in=2)


@pytest.fixture(scope="module")
def browser(run_dir: Path) -> Iterator[Browser]:
    page = render_page(run_dir, run_dir.parent / "growth.html")
    with Browser() as b:
        b.open(page, SIZE)
        wait_for(b, "window.morphoPage && window.morphoPage.frames > 0")
        yield b


def wait_for(b: Browser, condition: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not b.eval(f"!!({condition})"):
        assert time.monotonic() < deadline, f"page never reached: {condition}"
        time.sleep(0.05)


def set_slider(b: Browser, k: int) -> None:
    """Move the slider as a user does (value + an input event) and wait for a new frame."""
    frames = b.eval("window.morphoPage.frames")
    b.eval(
        f"(() => {{ const s = document.getElementById('slider'); s.value = '{k}';"
        " s.dispatchEvent(new Event('input')); })()"
    )
    wait_for(b, f"window.morphoPage.frames > {frames}")


def distinct_colours_in_view(b: Browser) -> int:
    box = b.eval(
        "(() => { const r = document.getElementById('gl').getBoundingClientRect();"
        " return [r.left, r.top, r.right, r.bottom]; })()"
    )
    image = Image.open(io.BytesIO(b.screenshot())).convert("RGB")
    return len(set(image.crop(tuple(round(v) for v in box)).get_flattened_data()))


def test_the_view_is_drawn_with_webgl(browser: Browser) -> None:
    assert browser.eval("window.morphoPage.webgl")
    # shaded spheres of several colours and blended lines: far more than a blank canvas's 1
    assert distinct_colours_in_view(browser) > 200


def test_the_slider_shows_each_snapshots_cells(browser: Browser, run_dir: Path) -> None:
    run = load_run(run_dir)
    for k in (0, len(run.snapshots) // 2, len(run.snapshots) - 1):
        set_slider(browser, k)
        assert browser.eval("window.morphoPage.snapshot") == k
        assert browser.eval("window.morphoPage.nCells") == run.snapshots[k].n_cells
        assert browser.eval("window.morphoPage.nEdges") == run.snapshots[k].n_edges
        assert sorted(browser.eval("window.morphoPage.ids()")) == sorted(
            run.snapshots[k].ids.tolist()
        )
        status = browser.eval("document.getElementById('status').textContent")
        assert f"step {run.snapshots[k].step} · {run.snapshots[k].n_cells} cells" in status


def test_clicking_a_cell_shows_its_id_and_birth_reason(browser: Browser, run_dir: Path) -> None:
    run = load_run(run_dir)
    set_slider(browser, len(run.snapshots) - 1)
    made_by = {c: e for e in read_jsonl(run_dir / "events.jsonl") for c in e.get("new_cells", [])}
    hits = 0
    for cid in [c for c in run.snapshots[-1].ids.tolist() if c in made_by]:
        at = browser.eval(f"window.morphoPage.project({cid})")
        browser.click(at["x"], at["y"])
        wait_for(browser, "window.morphoPage.selected !== null")
        chosen = browser.eval("window.morphoPage.selected")
        info = browser.eval("document.getElementById('info').innerText")
        # whatever the click hit (a nearer cell may hide this one), the panel describes it
        assert f"cell {chosen}" in info
        if chosen in made_by:
            assert made_by[chosen]["reason"] in info and f"step {made_by[chosen]['step']}" in info
        hits += chosen == cid
    assert hits > 0, "no click at a cell's projected centre picked that cell"


def test_an_event_in_the_list_moves_the_slider(browser: Browser, run_dir: Path) -> None:
    events = read_jsonl(run_dir / "events.jsonl")
    steps = load_run(run_dir).steps.tolist()
    set_slider(browser, 0)
    k = len(events) // 2
    at = browser.eval(
        f"(() => {{ const li = document.querySelectorAll('#events li')[{k}];"
        " li.scrollIntoView(); const r = li.getBoundingClientRect();"
        " return {x: r.left + 8, y: r.top + r.height / 2}; })()"
    )
    browser.click(at["x"], at["y"])
    wait_for(browser, "window.morphoPage.snapshot > 0")
    shown = browser.eval("window.morphoPage.step")
    assert shown == min(s for s in steps if s >= events[k]["step"])
    assert browser.eval("document.getElementById('slider').value") == str(steps.index(shown))


def test_every_colour_choice_draws_and_nothing_is_logged_as_an_error(browser: Browser) -> None:
    names = browser.eval("Array.from(document.getElementById('color').options, o => o.value)")
    assert len(names) == 8
    for name in names:
        frames = browser.eval("window.morphoPage.frames")
        browser.eval(
            f"(() => {{ const s = document.getElementById('color'); s.value = {json.dumps(name)};"
            " s.dispatchEvent(new Event('change')); })()"
        )
        wait_for(browser, f"window.morphoPage.frames > {frames}")
        assert browser.eval("window.morphoPage.color") == name
    assert browser.errors == []
