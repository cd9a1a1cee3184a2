"""Drive a headless Chromium over the DevTools protocol on a pipe: no driver, no websocket.

    with Browser() as b:                         # ValueError if no chromium binary is found
        b.open("growth.html", size=(1280, 800))   # waits for the load event
        b.eval("window.morphoPage.nCells")        # a JSON value back
        png = b.screenshot()                      # PNG bytes
        b.click(640, 400)
        b.errors                                  # console errors and uncaught exceptions

Chromium started with ``--remote-debugging-pipe`` reads DevTools commands from its fd 3
and writes replies and events to its fd 4, one JSON message per NUL-terminated chunk
(the transport Puppeteer and Playwright use), so the standard library is enough. Used by
the page's browser tests, its benchmark and ``docs/make_figures.py``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

BINARIES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-angle=swiftshader",  # WebGL on the CPU: headless has no GPU here
    "--enable-unsafe-swiftshader",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on ``PATH`` (or ``$MORPHO_CHROMIUM``), else None."""
    env = os.environ.get("MORPHO_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium with one page; a context manager that always ends it."""

    def __init__(self, binary: str | None = None, timeout: float = 60.0) -> None:
        found = binary or find_chromium()
        if found is None:
            raise ValueError(
                f"no Chromium binary found; expected one of {', '.join(BINARIES)} on PATH "
                "(Debian: apt-get install chromium)"
            )
        self.timeout = timeout
        self.errors: list[str] = []  # console errors and uncaught exceptions, in order
        self._profile = tempfile.mkdtemp(prefix="morpho-chromium-")
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._proc, self._to_browser, self._from_browser = self._start(found)
        self._session = ""
        try:
            self._session = self._attach()
        except BaseException:
            self.close()
            raise

    def _start(self, binary: str) -> tuple[subprocess.Popen[bytes], int, int]:
        cmd_r, cmd_w = os.pipe()  # we write commands, the browser reads them on fd 3
        out_r, out_w = os.pipe()  # the browser writes on fd 4, we read
        # above 4, so that dup2 onto 3 and 4 in the child cannot clobber either end
        hi_r, hi_w = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)

        def wire() -> None:
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,
            pass_fds=(3, 4),
        )
        for fd in (cmd_r, out_w, hi_r, hi_w):
            os.close(fd)
        return proc, cmd_w, out_r

    def _attach(self) -> str:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=None)
        reply = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, None
        )
        session = str(reply["sessionId"])
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        return session

    # ------------------------------------------------------------------ protocol
    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = ""
    ) -> dict[str, Any]:
        """Send one command (to the page's session unless ``session`` is None) and wait for
        its reply; ``RuntimeError`` with the protocol's message if it failed."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session or self._session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._receive(self.timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return dict(reply.get("result", {}))

    def _receive(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"Chromium sent nothing for {timeout:.0f} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (it exited)")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        if "method" in message:
            self._note(message)
        return message

    def _note(self, event: dict[str, Any]) -> None:
        self._events.append(event)
        method, p = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append(str(d.get("exception", {}).get("description", d.get("text"))))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in p["args"])
            )
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            self.errors.append(str(p["entry"].get("text")))

    def _wait_event(self, method: str) -> dict[str, Any]:
        seen = [e for e in self._events if e["method"] == method]
        while not seen:
            event = self._receive(self.timeout)
            if event.get("method") == method:
                return event
        return seen[-1]

    # ------------------------------------------------------------------ page
    def open(self, path: str | os.PathLike[str], size: tuple[int, int] = (1280, 800)) -> float:
        """Load a local file at a ``size`` viewport; returns seconds until its load event."""
        w, h = size
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False},
        )
        self._events.clear()
        start = time.perf_counter()
        self.send("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self._wait_event("Page.loadEventFired")
        return time.perf_counter() - start

    def eval(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (a promise is awaited)."""
        reply = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in reply:
            d = reply["exceptionDetails"]
            raise RuntimeError(str(d.get("exception", {}).get("description", d.get("text"))))
        return reply.get("result", {}).get("value")

    def screenshot(self) -> bytes:
        """A PNG of the viewport."""
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def click(self, x: float, y: float) -> None:
        """A left click at viewport pixel ``(x, y)``."""
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """End the browser and remove its profile."""
        try:
            self.send("Browser.close", session=None)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
