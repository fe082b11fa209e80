#!/usr/bin/env bash
# \file cuda_check.sh
# The CUDA check of the templates stage, for a lent GPU machine (the `device` tool, one H200):
#   1. environment (GPU, driver, torch);
#   2. build: nothing to compile for the torch path (libdyroot/SOFIE needs ROOT, absent there);
#   3. the CUDA tests: Philox on the device bit-identical to numpy, the fused generator on
#      CUDA against the CPU (tests/test_random.py, tests/test_generate.py);
#   4. the benchmark of the fused path: events/min with cuts and histograms, the flow alone,
#      the fraction of the fp32 roofline (benchmarks/cuda_bench.py).
# Everything lands in $OUT (the device tool brings it back), or /tmp/dyroot-cuda-check.
#
# Device tool:  run(command="bash benchmarks/cuda_check.sh", timeout_s=540)
# Runs in ~4-6 minutes on an H200 (a torch.compile per compiled configuration).
# \author dyroot (templates/streams)
# \date 2026-12
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${OUT:-/tmp/dyroot-cuda-check}
mkdir -p "$OUTDIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
status=0

# ---- 1. environment -----------------------------------------------------------------------
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  $PY -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, torch.cuda.get_device_name())"
  $PY -c "import onnx, onnxruntime; print('onnx', onnx.__version__, 'onnxruntime', onnxruntime.__version__)" || true
  $PY -c "import uproot" 2>/dev/null || echo "uproot absent: file-writing tests are not run here"
} 2>&1 | tee "$OUTDIR/env.txt"

# ---- 3. CUDA tests ------------------------------------------------------------------------
# -W default: a newer torch's deprecation warnings must not fail these device checks.
timeout 200 $PY -m pytest -c tests/pytest.ini -p no:cacheprovider -W default -q -rs \
  tests/test_random.py tests/test_generate.py \
  -k "cuda or bit_identical or known_answer or matches_unbatched or fixed_grid or same_seed" \
  2>&1 | tee "$OUTDIR/tests.log" || status=1

# ---- 4. benchmark of the fused path -------------------------------------------------------
timeout 330 $PY benchmarks/cuda_bench.py --seconds 10 --json "$OUTDIR/cuda_bench.json" \
  2>&1 | tee "$OUTDIR/cuda_bench.txt" || status=1

echo "cuda_check: exit status $status (figures in $OUTDIR)"
exit $status
