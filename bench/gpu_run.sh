#!/usr/bin/env bash
# One run on a lent CUDA machine with no package index (see the project's gpu notes):
# install the wheels `make gpu-wheels` put in .whl/, run the engine's tests from outside
# the tree, the comparison with lucent and torch-dreams on CUDA, the torch.compile probe
# and the exhaustive ResNet-50 estimate. Each step runs even if one before it failed (its
# exit status goes to steps.txt). Results go to $OUT (the device tool's folder) or
# bench/results.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/bench/results}
mkdir -p "$OUT"
step() {  # step NAME COMMAND...: run it, log its exit status
  local name=$1
  shift
  "$@"
  echo "$name: exit $?" | tee -a "$OUT/steps.txt"
}
python3 -m pip install -q --no-index --no-deps --no-compile .whl/*.whl || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
tests=$PWD/tests
# the engine's tests (the cluster ones need dask, which the GPU box lacks)
pytest_cuda() {
  (cd /tmp && timeout 300 python3 -m pytest -q -p no:cacheprovider "$tests/test_render.py" \
    "$tests/test_frozen.py" "$tests/test_fixed_size.py" "$tests/test_shapes.py" \
    "$tests/test_build.py" "$tests/test_pipeline.py" "$tests/test_host_sync.py") 2>&1 \
    | tail -15 | tee "$OUT/pytest-cuda.txt"
}
step pytest pytest_cuda
step compare timeout 240 python3 bench/compare.py --device cuda --rounds 2 \
  --out "$OUT/compare-cuda.json"
step estimate bash -c "timeout 120 atlas build bench/resnet50_exhaustive.toml --dry-run \
  --json --cache-dir /tmp/atlas-estimate > '$OUT/resnet50-exhaustive-estimate.json'"
step compile timeout 180 python3 bench/compile_probe.py --device cuda \
  --out "$OUT/compile-cuda.json"
