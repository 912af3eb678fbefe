#!/usr/bin/env bash
# One device-machine check: wt_model tests under the image's torch, a CUDA smoke, the bench on CUDA, and the
# CPU bench restricted to 2 threads (an uncontended CPU, for side-by-side ratios).
set -x
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -c "import torch; print(torch.__version__)"
python3 -m pytest -q --noconftest -p no:cacheprovider tests/wt_model 2>&1 | tail -3
PYTHONPATH=. python3 benchmarks/cuda_check.py
timeout 150 python3 -m study.cli bench --steps 10 --warmup 3 2>/dev/null
OMP_NUM_THREADS=2 timeout 240 python3 -m study.cli bench --device cpu --steps 3 --warmup 1 2>/dev/null
