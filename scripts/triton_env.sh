#!/usr/bin/env bash
# The Triton test server's own virtual environment (issue 14), for the `triton` tests and
# `python main.py bench --tasks triton`. nvidia-pytriton ships a real tritonserver binary but pins
# numpy < 2, so it lives apart from the app's environment, cached outside the clone:
#   ${VISION_APP_TRITON_ENV:-${XDG_CACHE_HOME:-~/.cache}/vision-app/triton-env}
# It is built once (a few minutes, from PyPI) and rebuilt only when scripts/triton-requirements.txt
# changes or the environment no longer imports pytriton. Prints the environment's python on stdout
# (progress goes to stderr):   PY=$(bash scripts/triton_env.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=scripts/triton-requirements.txt
PY="${PYTHON:-python3}"
ENV_DIR="${VISION_APP_TRITON_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vision-app/triton-env}"
STAMP="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ "$(cat "$ENV_DIR/.stamp" 2>/dev/null)" == "$STAMP" ]] \
        && "$ENV_DIR/bin/python" -c "import pytriton.triton, onnxruntime" 2>/dev/null; then
    echo "$ENV_DIR/bin/python"
    exit 0
fi
echo "triton_env: building $ENV_DIR with $("$PY" --version 2>&1) from $REQ (once; a few minutes)" >&2
rm -rf "$ENV_DIR"
mkdir -p "$(dirname "$ENV_DIR")"
"$PY" -m venv "$ENV_DIR"
"$ENV_DIR/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >&2
"$ENV_DIR/bin/python" -c "import pytriton.triton, onnxruntime, tritonclient.grpc.model_config_pb2" >&2
echo "$STAMP" > "$ENV_DIR/.stamp"   # written last: a broken build is rebuilt next time
echo "triton_env: ready" >&2
echo "$ENV_DIR/bin/python"
