#!/usr/bin/env bash
# The NVIDIA GPU checks (issues 7 and 17). Only the checkout travels to a GPU machine, not ../shared, so
# they come in two steps:
#
#   bash scripts/gpu_check.sh --stage   # here, beside ../shared: copies the pycuda wheels and the few models
#                                       # and media the checks use into .gpu-stage/ (git-ignored, ~18 MiB)
#                                       # and checks that it and the tracked files stay under 64 MiB
#   bash scripts/gpu_check.sh           # on the GPU machine, in the copied checkout with .gpu-stage/
#
# The check step uses .gpu-stage/ when it is there (else ../shared): installs pycuda from its wheels into a
# temporary folder unless pycuda imports already, finds libcurand for pycuda where the loader does not,
# then runs, in labelled sections: the gpu tests (tests/engines/test_gpu.py: the CUDA kernel against the
# CPU preprocessing, pinned buffers and streams released, two threads with their own context activation,
# the NVRTC fallback, the CUDA runtime sharing pycuda's primary context; their figures print under "GPU
# check report"), the tensorrt tests (test_gpu_tensorrt.py; they skip where TensorRT is absent: reported,
# not failed), the CPU-side TensorRT / kernel tests and the preprocessing benchmark, and ends with one
# summary line. GPU_CHECK_BUDGET (default 270 s) bounds the whole check; PYTHON picks the interpreter.
# Everything it writes goes to a temporary folder (pytest cache off, no bytecode, caches redirected), the
# full log also to $OUT/gpu_check.log when $OUT is set.
# Exit status 1 when a test fails, or, where nvidia-smi sees a GPU, when pycuda does not import, any gpu
# test is skipped or the benchmark cannot run its GPU rows; 0 on a machine without a GPU where the gpu
# tests skip with their reasons; 2 for a bad call or a failed staging.
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=.gpu-stage
PY="${PYTHON:-python3}"
LIMIT_BYTES=$((64 * 1024 * 1024))
BUDGET="${GPU_CHECK_BUDGET:-270}"  # seconds for the whole check step; each step gets at most what is left
# what the tests and scripts/bench_preprocess.py read (see test_gpu.py, test_tensorrt_cpu.py, test_onnx_fp16.py)
MODEL_FILES=(README.md SHA256SUMS detection/yolo-fastest-1.1-xl.onnx detection/yolo-fastest-1.1.onnx
             face/yunet_2026may.onnx face/minifasnet_v2_scale2.7.onnx style/johnson_wave.onnx
             style/magenta_style_transfer_384.onnx)
MEDIA_FILES=(README.md scenes video/bigbuckbunny.mp4)
WHEEL_NAMES=(pycuda mako platformdirs pytools siphash24)
CPU_TESTS=(tests/engines/test_tensorrt_cpu.py tests/engines/test_trt_timing_cache_cpu.py
           tests/engines/test_cuda_preprocess_cpu.py tests/engines/test_onnx_fp16.py
           tests/engines/test_gpu_resources_cpu.py)

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

stage() {
    local shared="${VISION_APP_SHARED:-../shared}" name f matches
    for d in models media gpu-wheels; do
        if [ ! -d "$shared/$d" ]; then
            echo "gpu_check --stage: $shared/$d not found; run it in a checkout with ../shared beside it" >&2
            return 2
        fi
    done
    [ -d "$STAGE" ] && chmod -R u+w "$STAGE" && rm -rf "$STAGE"
    mkdir -p "$STAGE/wheels" "$STAGE/models" "$STAGE/media" || return 2
    for name in "${WHEEL_NAMES[@]}"; do
        matches=("$shared/gpu-wheels/$name"-*.whl)
        if [ ! -e "${matches[0]}" ]; then
            echo "gpu_check --stage: no $name-*.whl in $shared/gpu-wheels" >&2
            return 2
        fi
        cp "${matches[@]}" "$STAGE/wheels/" || return 2
    done
    for f in "${MODEL_FILES[@]}"; do
        mkdir -p "$STAGE/models/$(dirname "$f")" && cp -r "$shared/models/$f" "$STAGE/models/$f" || return 2
    done
    for f in "${MEDIA_FILES[@]}"; do
        mkdir -p "$STAGE/media/$(dirname "$f")" && cp -r "$shared/media/$f" "$STAGE/media/$f" || return 2
    done
    chmod -R u+w "$STAGE"  # ../shared is read-only; the copies need not be
    echo "== staged into $STAGE/ (git-ignored; it travels with the checkout when named in the run's carry list):"
    (cd "$STAGE" && find . -type f -printf '%s %P\n' | sort -k2 | while read -r size path; do
        printf '  %10s  %s\n' "$(mib "$size")" "$path"; done)
    local tracked staged total
    tracked=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    staged=$(du -sb "$STAGE" | cut -f1)
    total=$((tracked + staged))
    echo "== sizes: the checkout (tracked and not ignored) $(mib "$tracked") + $STAGE $(mib "$staged") = $(mib "$total")" \
         "(the limit for what travels: $(mib "$LIMIT_BYTES"))"
    if [ "$total" -ge "$LIMIT_BYTES" ]; then
        echo "gpu_check --stage: too big to travel" >&2
        return 2
    fi
    echo "== on the GPU machine, from the checkout root: bash scripts/gpu_check.sh   (carry: [\"$STAGE\"])"
}

# The directory holding shared library $1 among the CUDA toolkit and the nvidia-* wheels of $PY.
find_lib_dir() {
    local name="$1" d hit
    local dirs=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64
                /usr/local/cuda-*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu)
    mapfile -t -O "${#dirs[@]}" dirs < <("$PY" -c 'import sys; print("\n".join(p for p in sys.path if p))')
    for d in "${dirs[@]}"; do
        for hit in "$d/$name" "$d"/nvidia/*/lib/"$name" "$d"/nvidia/*/lib64/"$name"; do
            if [ -e "$hit" ]; then dirname "$hit"; return 0; fi
        done
    done
    return 1
}

# pycuda.driver imports and sees the driver: prints one line, status 0; or the error's last line, status 1.
probe_pycuda() {
    "$PY" - <<'PY' 2>&1 | tail -1
import sys
try:
    import pycuda
    import pycuda.driver as cuda
    cuda.init()
    print(f"pycuda {pycuda.VERSION_TEXT} from {pycuda.__path__[0]}; driver CUDA {cuda.get_driver_version()}, "
          f"{cuda.Device.count()} device(s)")
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
    sys.exit(1)
PY
    return "${PIPESTATUS[0]}"
}

# "passed failed errors skipped" of a pytest junit file (zeros when missing); skip reasons to $2 if given.
junit_counts() {
    "$PY" - "$1" "${2:-}" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 0 0 0"); sys.exit()
cases = list(root.iter("testcase"))
fail = sum(1 for c in cases if c.find("failure") is not None)
err = sum(1 for c in cases if c.find("error") is not None)
skipped = [c for c in cases if c.find("skipped") is not None]
print(len(cases) - fail - err - len(skipped), fail, err, len(skipped))
if sys.argv[2]:
    with open(sys.argv[2], "w") as fh:
        for c in skipped:
            fh.write(f"{c.get('name')}: {c.find('skipped').get('message', '')}\n")
PY
}

# Seconds a step may take: $1, or less when the budget is nearly spent (15 at least).
limit() {
    local want="$1" left=$((BUDGET - (SECONDS - T0)))
    [ "$left" -lt "$want" ] && want="$left"
    [ "$want" -lt 15 ] && want=15
    echo "$want"
}

# A step's failure text: exit 124 is the step's time limit.
step_failed() { if [ "$2" -eq 124 ]; then echo "$1 (timed out)"; else echo "$1 (exit $2)"; fi; }

check() {
    local failures=() have_gpu=0 gpu_line pycuda_line pycuda_ok=0 src wheels missing d i tee_pid=""
    T0=$SECONDS
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/vision-app-gpu-check.XXXXXX")"
    if [ -n "${OUT:-}" ] && [ -d "$OUT" ] && [ -w "$OUT" ]; then  # the whole log comes back as a file too
        exec 3>&1 4>&2 > >(tee -a "$OUT/gpu_check.log") 2>&1
        tee_pid=$!
    fi
    export XDG_CACHE_HOME="$WORK/cache" HYPOTHESIS_STORAGE_DIRECTORY="$WORK/hypothesis" \
           PYTHONPYCACHEPREFIX="$WORK/pycache" PYTHONDONTWRITEBYTECODE=1 MPLCONFIGDIR="$WORK/mpl"
    if [ -d "$STAGE/models" ]; then src="$PWD/$STAGE"; else src="$(cd .. && pwd)/shared"; fi
    export VISION_APP_SHARED="${VISION_APP_SHARED:-$src}"
    export VISION_APP_MODELS="${VISION_APP_MODELS:-$VISION_APP_SHARED/models}"
    if [ -d "$STAGE/wheels" ]; then wheels="$PWD/$STAGE/wheels"; else wheels="$VISION_APP_SHARED/gpu-wheels"; fi
    wheels="${GPU_WHEELS:-$wheels}"

    echo "== [environment]"
    echo "  $($PY -c 'import sys; print("python", sys.version.split()[0], "at", sys.executable)' 2>&1)"
    gpu_line="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -4)"
    if [ -n "$gpu_line" ]; then have_gpu=1; echo "  nvidia-smi: $gpu_line"; else echo "  nvidia-smi: no GPU seen"; fi
    if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH="$PATH:/usr/local/cuda/bin"; fi
    echo "  nvcc: $(command -v nvcc >/dev/null && nvcc --version | tail -2 | head -1 || echo 'not on PATH')"
    echo "  models: $VISION_APP_MODELS; media: $VISION_APP_SHARED/media; writes under $WORK"
    "$PY" - <<'PY'
from importlib import metadata  # versions without importing anything (no CUDA initialised here)
for label, dists in (("numpy", ["numpy"]), ("opencv", ["opencv-python-headless", "opencv-python"]),
                     ("onnxruntime", ["onnxruntime", "onnxruntime-gpu"]), ("torch", ["torch"]),
                     ("cupy", ["cupy-cuda13x", "cupy-cuda12x", "cupy"]), ("cuda-python", ["cuda-bindings", "cuda-python"]),
                     ("tensorrt", ["tensorrt", "tensorrt-cu13", "tensorrt-cu12"])):
    found = []
    for d in dists:
        try:
            found.append(f"{d} {metadata.version(d)}")
        except metadata.PackageNotFoundError:
            pass
    print(f"  {label}: {', '.join(found) or 'not installed'}")
PY
    if ! "$PY" -c "import numpy, cv2, onnx, onnxruntime, pytest" 2>/dev/null; then
        echo "  the app's own dependencies are missing: pip install -e \".[dev]\" (needs a package index)"
        timeout "$(limit 120)" "$PY" -m pip install -q -e ".[dev]" || failures+=("dependencies")
    fi

    echo "== [pycuda]"
    if ! "$PY" -c "import pycuda" 2>/dev/null; then
        if compgen -G "$wheels/*.whl" >/dev/null; then
            echo "  installing $(cd "$wheels" && echo *.whl) into $WORK/site"
            if "$PY" -m pip --version >/dev/null 2>&1; then
                "$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$WORK/site" \
                    "$wheels"/*.whl || echo "  pip install FAILED"
            else  # a venv made without pip (uv): these wheels hold only packages, no .data, so unpacking is installing
                echo "  (no pip in this Python: unpacking the wheels)"
                for w in "$wheels"/*.whl; do "$PY" -m zipfile -e "$w" "$WORK/site" || echo "  unpacking $w FAILED"; done
            fi
        else
            echo "  no wheels at $wheels (run 'bash scripts/gpu_check.sh --stage' beside ../shared first)"
        fi
    fi
    export PYTHONPATH="$WORK/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    for i in 1 2 3; do  # a library pycuda links (libcurand.so.10) may be outside the loader's path
        if pycuda_line="$(probe_pycuda)"; then pycuda_ok=1; break; fi
        missing="$(grep -o 'lib[A-Za-z0-9_+-]*\.so[.0-9]*' <<<"$pycuda_line" | head -1)"
        if [ -z "$missing" ] || ! d="$(find_lib_dir "$missing")"; then break; fi
        echo "  $missing found in $d: added to LD_LIBRARY_PATH"
        export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
    echo "  $pycuda_line"
    if [ "$have_gpu" = 1 ] && [ "$pycuda_ok" = 0 ]; then failures+=("pycuda does not import: $pycuda_line"); fi

    echo "== [what the app sees]"
    "$PY" - <<'PY' 2>&1 | tail -8
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

    local pytest_args=(-p no:cacheprovider -q -rs --tb=short -o console_output_style=classic)
    echo "== [gpu tests] kernel vs CPU preprocessing, pinned buffers and streams, two threads, NVRTC fallback," \
         "CUDA runtime and pycuda's primary context (tests/engines/test_gpu.py -m 'gpu and not tensorrt')"
    timeout -k 10 "$(limit 180)" "$PY" -m pytest "${pytest_args[@]}" --junitxml="$WORK/gpu.xml" \
        -m "gpu and not tensorrt" tests/engines/test_gpu.py
    local gpu_rc=$? gp gf ge gs
    read -r gp gf ge gs < <(junit_counts "$WORK/gpu.xml" "$WORK/gpu-skips.txt")
    if [ "$gpu_rc" -ne 0 ] && [ "$gpu_rc" -ne 5 ]; then failures+=("$(step_failed "gpu tests" "$gpu_rc")"); fi
    if [ "$have_gpu" = 1 ] && [ $((gp + gf + ge)) -eq 0 ]; then failures+=("no gpu test ran"); fi
    if [ "$have_gpu" = 1 ] && [ "$gs" -gt 0 ]; then
        failures+=("$gs gpu test(s) skipped on a GPU machine")
        echo "  SKIPPED ON A GPU MACHINE (counts as a failure):"; sed 's/^/    /' "$WORK/gpu-skips.txt"
    fi

    echo "== [tensorrt tests] engines built from the real models (skip where TensorRT is absent: expected here)"
    timeout -k 10 "$(limit 60)" "$PY" -m pytest "${pytest_args[@]}" --junitxml="$WORK/trt.xml" -m tensorrt \
        tests/engines/test_gpu_tensorrt.py
    local trt_rc=$? tp tf te ts trt_note
    read -r tp tf te ts < <(junit_counts "$WORK/trt.xml")
    if [ "$trt_rc" -ne 0 ] && [ "$trt_rc" -ne 5 ]; then failures+=("$(step_failed "tensorrt tests" "$trt_rc")"); fi
    if "$PY" -c "import tensorrt" 2>/dev/null; then
        trt_note="TensorRT installed"
        if [ "$have_gpu" = 1 ] && [ "$ts" -gt 0 ]; then failures+=("$ts tensorrt test(s) skipped with TensorRT present"); fi
    else
        trt_note="skips expected: TensorRT is not installed, its part stays verified against the API only"
    fi

    echo "== [CPU-side tests] engine cache, profiles, timing cache, kernel C code, FP16 conversion, release order"
    timeout -k 10 "$(limit 150)" "$PY" -m pytest "${pytest_args[@]}" --junitxml="$WORK/cpu.xml" "${CPU_TESTS[@]}"
    local cpu_rc=$? cp_ cf ce cs
    read -r cp_ cf ce cs < <(junit_counts "$WORK/cpu.xml")
    if [ "$cpu_rc" -ne 0 ]; then failures+=("$(step_failed "CPU-side tests" "$cpu_rc")"); fi

    echo "== [benchmark] preprocessing a 1280x720 frame (scripts/bench_preprocess.py)"
    local bench_args=(--size 1280x720 --frames 200) bench_rc
    [ "$have_gpu" = 1 ] && bench_args+=(--require-gpu)
    timeout -k 10 "$(limit 60)" "$PY" scripts/bench_preprocess.py "${bench_args[@]}"
    bench_rc=$?
    if [ "$bench_rc" -ne 0 ]; then failures+=("$(step_failed benchmark "$bench_rc")"); fi

    if [ -n "${OUT:-}" ] && [ -d "$OUT" ] && [ -w "$OUT" ]; then cp "$WORK"/*.xml "$OUT"/ 2>/dev/null; fi
    local verdict=PASS
    [ "${#failures[@]}" -gt 0 ] && verdict=FAIL
    echo "== [summary]"
    echo "gpu_check: $verdict - GPU: ${gpu_line:-none}; pycuda: $([ $pycuda_ok = 1 ] && echo ok || echo 'not usable');" \
         "gpu tests: $gp passed, $((gf + ge)) failed, $gs skipped; tensorrt tests: $tp passed, $((tf + te)) failed," \
         "$ts skipped ($trt_note); CPU-side tests: $cp_ passed, $((cf + ce)) failed, $cs skipped;" \
         "benchmark: $([ "$bench_rc" = 0 ] && echo ok || echo "exit $bench_rc"); $((SECONDS - T0)) s" \
         "${failures[*]:+- failed: $(IFS=';'; echo "${failures[*]}")}"
    rm -rf "$WORK"
    if [ -n "$tee_pid" ]; then exec 1>&3 2>&4 3>&- 4>&-; wait "$tee_pid" 2>/dev/null; fi
    [ "$verdict" = PASS ]
}

case "${1:-}" in
    --stage) stage ;;
    "") check ;;
    -h|--help) sed -n '2,22p' "$0" ;;
    *) echo "usage: bash scripts/gpu_check.sh [--stage]" >&2; exit 2 ;;
esac
