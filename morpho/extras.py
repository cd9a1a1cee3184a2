"""What to install when an optional dependency (an extra of ``pyproject.toml``) is missing.

    except ImportError as e:
        fail(missing_extra(e))   # "... needs the images extra (mlxtend is not installed);
                                 #  expected it installed: pip install -e '/src/morpho[images]'"

The hint is one command that works where morpho came from: a source checkout (an editable
install, or the package imported from its folder) reinstalls itself with the extra; an
installed wheel gets the extra's own packages, which an index has even where morpho is not
published.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib import metadata
from pathlib import Path

DIST = "morpho"


def missing_module(e: BaseException) -> str | None:
    """The top-level module whose import failed (following ``raise … from``), if named."""
    seen: BaseException | None = e
    while seen is not None:
        name = getattr(seen, "name", None)
        if name:
            return str(name).split(".")[0]
        seen = seen.__cause__
    return None


def extra_of(module: str) -> tuple[str, list[str]] | None:
    """``(extra, its requirements)`` of the first extra (other than test/dev) that
    installs ``module``; None when no extra does (or morpho's metadata is absent)."""
    try:
        requires = metadata.requires(DIST) or []
    except metadata.PackageNotFoundError:
        return None
    extras: dict[str, list[str]] = {}
    for req in requires:
        m = re.search(r"""extra\s*==\s*["']([\w-]+)["']""", req)
        if m and m.group(1) not in ("test", "dev"):
            extras.setdefault(m.group(1), []).append(req.split(";")[0].strip())
    key = _normal(module)
    for extra, reqs in extras.items():
        if any(_normal(re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0]) == key for r in reqs):
            return extra, reqs
    return None


def install_hint(extra: str, requirements: list[str]) -> str:
    """The one command that installs ``extra`` for this morpho (see the module docstring)."""
    checkout = source_checkout()
    if checkout is not None:
        return f"pip install -e {shlex.quote(f'{checkout}[{extra}]')}"
    return "pip install " + " ".join(shlex.quote(r) for r in requirements)


def source_checkout() -> Path | None:
    """The source folder of an editable install (or of a morpho imported from its
    checkout); None for an installed wheel."""
    try:
        text = metadata.distribution(DIST).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        text = None
    if text:
        info = json.loads(text)
        if info.get("dir_info", {}).get("editable") and info.get("url", "").startswith("file://"):
            return Path(info["url"].removeprefix("file://"))
        return None
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def missing_extra(e: ImportError, what: str = "this command") -> str:
    """One line for an import that failed: the extra to install and how."""
    module = missing_module(e)
    if module is None:
        return f"{what} cannot import a dependency ({e}); expected it installed"
    found = extra_of(module)
    if found is None:
        return f"{what} needs {module}, which is not installed; expected it: pip install {module}"
    extra, reqs = found
    return (
        f"{what} needs the {extra} extra ({module} is not installed); expected it "
        f"installed: {install_hint(extra, reqs)}"
    )


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
