#!/usr/bin/env bash
# Every GPU figure and check in one command, for a session lent a CUDA machine.
#
#   bash benchmarks/gpu_suite.sh OUTDIR [tests] [train] [infer] [scale]   (default: all four)
#
# On the device tool's machine: `bash benchmarks/gpu_suite.sh $OUT tests train` in one call,
# `... $OUT infer scale` in the next (each call has a 10-minute limit). The image there has
# torch, torch-geometric, networkx, numpy, typer, rich and pytest but no pyvista: the engine,
# the benchmarks and tests/engine/test_gpu.py need nothing else. Logs land in OUTDIR, one per part.
set -uo pipefail
out=${1:?usage: gpu_suite.sh OUTDIR [tests] [train] [infer] [scale]}
shift
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(tests train infer scale)
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
if ! $py -c "import morpho.sims.baselines" 2>/dev/null; then
  # not installed: lay the package out as pyproject.toml maps it (no pip, no network)
  site=$(mktemp -d)
  cp -r morpho "$site/morpho" && cp -r sims "$site/morpho/sims" &&
    cp -r growth_rules "$site/morpho/growth_rules" && cp -r viz "$site/morpho/viz" || exit 1
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
$py -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" | tee "$out/device.txt" || exit 1
nvidia-smi >> "$out/device.txt" 2>&1
status=0
for part in "${parts[@]}"; do
  case $part in
    tests)  # CPU == CUDA to tolerance, edits and optimizer state on CUDA, no host sync in a step
      $py -m pytest -m gpu -q -p no:cacheprovider tests/engine/test_gpu.py 2>&1 | tee "$out/tests.txt" ;;
    train)  # morpho vs Transformers of equal params / FLOPs, side by side
      { $py benchmarks/throughput.py --device cuda --mode train --steps 50 --batch 64 --seq 128 --d-cell 64
        $py benchmarks/throughput.py --device cuda --mode train --steps 50 --batch 256 --seq 256 --d-cell 64
        $py benchmarks/throughput.py --device cuda --mode train --steps 50 --batch 16 --seq 64
      } 2>&1 | tee "$out/train.txt" ;;
    infer)  # gate skipping at inference on the GPU
      $py benchmarks/throughput.py --device cuda --mode infer --open 0 0.1 1 --steps 50 --batch 64 --seq 128 --d-cell 64 2>&1 | tee "$out/infer.txt" ;;
    scale)  # step / edit / memory against tissue size up to 1,000,000 cells (item 3)
      $py benchmarks/scaling.py --device cuda --sizes 1000 10000 100000 1000000 --repeats 3 --json "$out/scaling.json" 2>&1 | tee "$out/scale.txt" ;;
    *) echo "gpu_suite.sh: unknown part '$part'; expected tests, train, infer or scale" >&2; exit 2 ;;
  esac
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
exit $status
