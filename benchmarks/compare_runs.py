"""Compare two trees of run logs (benchmarks/reference_runs.sh) line for line.

Wall-clock fields aside, numbers may differ by at most 1e-6 relative. Prints one line per
file (identical bytes / equal / the differences) and exits 1 on any difference.

    python benchmarks/compare_runs.py BEFORE AFTER
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

WALL = {"tokens_per_s", "wall_s", "time", "elapsed", "seconds", "wall", "timestamp"}
WALL |= {"train_s", "eval_s", "time_s"}
RELATIVE = 1e-6


def is_wall_clock(key: str) -> bool:
    return key in WALL or "wall" in key


def close(a: float, b: float) -> bool:
    both_nan = math.isnan(a) and math.isnan(b)
    return a == b or both_nan or abs(a - b) <= RELATIVE * max(abs(a), abs(b))


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Every place where ``a`` and ``b`` differ, wall-clock fields aside."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if is_wall_clock(k):
                continue
            if k not in a or k not in b:
                out.append(f"{path}.{k}: missing in {'before' if k not in a else 'after'}")
            else:
                out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=False))
            for d in differences(x, y, f"{path}[{i}]")
        ]
    numbers = (int, float)
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, numbers) and isinstance(b, numbers) and close(a, b):
            return []
        return [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def compare_file(f: Path, g: Path) -> list[str]:
    if f.suffix == ".jsonl":
        la, lb = f.read_text().splitlines(), g.read_text().splitlines()
        out = [] if len(la) == len(lb) else [f"{len(la)} vs {len(lb)} lines"]
        for i, (x, y) in enumerate(zip(la, lb, strict=False)):
            out += differences(json.loads(x), json.loads(y), f"line {i + 1}")
        return out
    return differences(json.loads(f.read_text()), json.loads(g.read_text()))


def main(before: Path, after: Path) -> int:
    total = 0
    names = ("*.jsonl", "results.json", "summary.json")
    for f in [f for name in names for f in sorted(before.rglob(name))]:
        g = after / f.relative_to(before)
        if not g.exists():
            print(f"{f.relative_to(before)}: MISSING in {after}")
            total += 1
            continue
        bad = compare_file(f, g)
        if f.read_bytes() == g.read_bytes():
            verdict = "identical bytes"
        else:
            verdict = f"{len(bad)} DIFFS" if bad else "equal (wall-clock aside)"
        print(f"{f.relative_to(before)}: {verdict}")
        for line in bad[:8]:
            print("   ", line)
        total += len(bad)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
