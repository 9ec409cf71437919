#!/usr/bin/env bash
# The NVIDIA GPU checks in one command, for a machine with a GPU (issue 7):
#   bash scripts/gpu_check.sh
# 1. installs pycuda (and its pure-Python deps) from ../shared/gpu-wheels into .gpu-deps/ unless pycuda
#    already imports (the wheels are built for Python 3.12);
# 2. says what the app sees (tensorrt / pycuda / GPU) and which backend 'auto' picks;
# 3. runs the gpu and tensorrt tests (tensorrt ones skip, with the reason, where TensorRT is absent);
# 4. benchmarks GPU vs CPU preprocessing for a 1280x720 frame.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS="${GPU_WHEELS:-../shared/gpu-wheels}"
DEPS="${GPU_DEPS_DIR:-$PWD/.gpu-deps}"
export VISION_APP_MODELS="${VISION_APP_MODELS:-$(cd .. && pwd)/shared/models}"
PY="${PYTHON:-python3}"

echo "== python: $($PY --version 2>&1); nvidia-smi:"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "(no nvidia-smi)"
if ! $PY -c "import pycuda.driver" 2>/dev/null; then
    echo "== installing pycuda from $WHEELS into $DEPS"
    $PY -m pip install -q --no-index --no-deps --target "$DEPS" "$WHEELS"/*.whl || echo "pycuda install FAILED"
fi
export PYTHONPATH="$DEPS:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! $PY -c "import numpy, cv2, onnx, onnxruntime, pytest" 2>/dev/null; then
    echo "== installing the app's own dependencies (pip install -e .[dev])"
    $PY -m pip install -q -e ".[dev]" || echo "dependency install FAILED: numpy, opencv-python, onnx, onnxruntime, pytest needed"
fi

echo "== what the app sees"
$PY - <<'PY'
from engines.registry import available_backends, resolve_backend
for name, status in available_backends().items():
    print(f"  {name}: {status}")
print("  auto ->", resolve_backend("auto"))
try:
    from engines.cuda_context import gpu_info
    print("  GPU:", gpu_info(0))
except Exception as exc:
    print("  GPU: not usable:", exc)
PY

echo "== gpu + tensorrt tests"
$PY -m pytest -q -rs -m "gpu or tensorrt" tests/engines/test_gpu.py -p no:cacheprovider
status=$?

echo "== CPU-side TensorRT tests (cache, profiles, kernel C code, FP16 conversion)"
$PY -m pytest -q tests/engines/test_tensorrt_cpu.py tests/engines/test_cuda_preprocess_cpu.py \
    tests/engines/test_onnx_fp16.py -p no:cacheprovider || status=1

echo "== benchmark: preprocessing a 1280x720 frame"
$PY scripts/bench_preprocess.py --size 1280x720 --frames 200
exit $status
