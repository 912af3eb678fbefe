#!/usr/bin/env bash
# The lowest torch pyproject.toml admits, checked: a scratch virtual environment with torch 2.5.1 (a CUDA build
# from PyPI, about 5 GB; it runs on a CPU) runs the model, training-loop and compile tests against this checkout.
#   bash benchmarks/check_torch_floor.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-/tmp/wt-torch-floor}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "torch==2.5.1" numpy pyarrow pandas scipy pyyaml "ruamel.yaml>=0.18" pytest
PYTHONPATH="$PWD" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/wt_model tests/study/test_compiled.py tests/study/test_train.py
