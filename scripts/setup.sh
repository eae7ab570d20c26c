#!/usr/bin/env bash
# Create .venv and install tp-retriever into it, CPU torch first.
# A plain `pip install torch` on a machine without torch can pull a multi-GB CUDA build, so the
# CPU build is installed explicitly before the project (skip this if you already have a torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q "torch==2.13.0" \
    || python -m pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
fi
python -m pip install -q -e ".[dev,baselines,ui,server,milvus,ray]"
echo "installed: $(tpr --version)"
