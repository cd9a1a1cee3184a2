"""The count n-gram floor of a bench preset: order and discount chosen on the training split.

    OMP_NUM_THREADS=1 python benchmarks/ngram_floor.py --preset wide --corpus pydoc

Prints one JSON line per corpus: the eval-window bpc (the windows ``morpho bench`` scores),
the chosen order and discount, why the order search stopped, and the tuning sweep.
"""

from __future__ import annotations

import argparse
import json
import time

from morpho.grow import build_task
from morpho.sims.bench import bench_config
from morpho.sims.ngram import ngram_row

KEEP = ("best_val_bpc", "order", "discount", "tune_bpc", "stopped", "orders_tried", "counts")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="wide")
    ap.add_argument("--corpus", nargs="+", default=["pydoc"])
    ap.add_argument("--data", help="a UTF-8 text file instead of a named corpus")
    a = ap.parse_args()
    for corpus in [None] if a.data else a.corpus:
        opts = {"data": a.data} if a.data else {"corpus": corpus}
        cfg, _ = bench_config(a.preset, None, {"task_options": opts})
        task, t, t0 = build_task(cfg), cfg.train, time.perf_counter()
        row = ngram_row(task, t.seq_len, t.eval_batches, t.batch_size)
        out = {"preset": a.preset, "corpus": a.data or corpus, **{k: row[k] for k in KEEP}}
        out["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({**out, "sweep": row["sweep"]}))


if __name__ == "__main__":
    main()
