"""``morpho render RUN --out growth.html``: one self-contained interactive page of a run.

    render_page("runs/demo", "growth.html")    # ValueError on bad input, nothing written

The page holds the tissue at every snapshot (the movie's layout, radii and colours, see
:mod:`morpho.viz.page_data`), a colour selector, a time slider with a play button, cell
details on hover and click, the event list, and loss / cells curves with a marker at the
slider's step. Everything is inlined: the data as JSON in a ``<script>`` tag, the style and
a small hand-written WebGL2 renderer (``page_assets/``), so the file opens offline from
disk, with no server and no network.

A run still being written (its lock held by a live process and no ``summary.json`` yet) is
refused: its page would silently look like a finished run. The page is written through a
temporary file renamed at the end, after every check, so an error leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from morpho.rundir import check_out_file, writer
from morpho.tissue import atomic_path
from morpho.viz.coloring import CHOICES
from morpho.viz.page_data import page_payload
from morpho.viz.runs import load_run, require_snapshots
from morpho.viz.timeline import WORMHOLE_LENGTH

PAGE_SUFFIXES = (".html", ".htm")


def render_page(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    overwrite: bool = False,
    color: str = "free-energy",
    wormhole_length: float = WORMHOLE_LENGTH,
) -> Path:
    """Write the interactive page of ``run_dir`` at ``out`` (an existing file only with
    ``overwrite``), showing ``color`` first (the page switches between all of
    :data:`~morpho.viz.coloring.CHOICES`); returns ``out``.

    Raises:
        ValueError: ``out`` is not a new ``.html`` file; the run is missing, has no
            snapshots, is still being written, or a snapshot or log cannot be read.
    """
    out = Path(out)
    if out.suffix.lower() not in PAGE_SUFFIXES:
        raise ValueError(f"--out {str(out)!r} is not a page; expected a file ending in .html")
    if color not in CHOICES:
        raise ValueError(f"unknown --color {color!r}; expected one of: {', '.join(CHOICES)}")
    check_out_file(out, "--out", overwrite)
    refuse_if_running(run_dir)
    payload = page_payload(load_run(run_dir), wormhole_length)
    html = page_html({**payload, "color": color})
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out


def refuse_if_running(run_dir: str | os.PathLike[str]) -> None:
    """``ValueError`` if another process is still writing the run (lock held, no summary)."""
    path = Path(run_dir)
    require_snapshots(path)
    holder = writer(path)
    if holder is not None and not (path / "summary.json").exists():
        raise ValueError(
            f"run directory {str(path)!r} is still being written by {holder} (no "
            "summary.json yet); expected a finished run: wait for it to end"
        )


def page_html(payload: dict[str, Any]) -> str:
    """The page: the template with the style, the script and ``payload`` inlined."""
    data = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False)
    title = f"morpho growth: {payload['run']}"
    parts = {
        "title": title.replace("&", "&amp;").replace("<", "&lt;"),
        "css": _asset("page.css"),
        "js": _asset("page.js"),
        # "</script" or "<!--" would end or confuse the <script> element: "\u003c" is
        # the same JSON string
        "data": data.replace("<", "\\u003c"),
    }
    # one pass: text put in (a run's name, an event's reason) is never scanned again
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], _asset("page.html"))


def _asset(name: str) -> str:
    return resources.files("morpho.viz").joinpath("page_assets", name).read_text(encoding="utf-8")


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as ``null`` (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
