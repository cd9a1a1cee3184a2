#!/usr/bin/env bash
# The three runs whose logs a behaviour-preserving change must leave alone, line for line
# (wall-clock fields aside): the small grow, every mechanism on, and a split-digits stream.
#   bash benchmarks/reference_runs.sh OUT_BEFORE      # on the commit before the change
#   bash benchmarks/reference_runs.sh OUT_AFTER       # on the change
#   python benchmarks/compare_runs.py OUT_BEFORE OUT_AFTER
# MORPHO overrides the command (e.g. another venv's morpho).
set -euo pipefail
MORPHO=${MORPHO:-morpho}
export OMP_NUM_THREADS=1 MPLBACKEND=Agg
out=$(realpath -m "$1")
mkdir -p "$out"
cd "$(dirname "$0")/.."
$MORPHO grow --task lang --preset small --seed 0 --quiet --out "$out/small" --overwrite
$MORPHO grow --task lang --preset small --seed 0 --quiet --config docs/mechanisms.toml \
    --out "$out/mech" --overwrite
$MORPHO stream --stream split-digits --scenario class --methods morpho,replay --seeds 1 \
    --out "$out/stream" --overwrite
