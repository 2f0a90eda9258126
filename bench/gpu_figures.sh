#!/usr/bin/env bash
# The GPU figures of the speed work in one device run: bench/zoo_speed.py (every model, fp32/fp16/bf16 at
# batch 1 and 16, the CUDA-graph path, against transformers), bench/depth_e2e.py (the wrapper's share at
# 1080p, folder throughput) and ../shared/bench/zoo_vs_original.py (against the original MiDaS code).
#
#   bash bench/gpu_figures.sh prepare [SHARED]   # here, with pip access: wheels and the original code into
#                                                # ignored folders (.whl, .whlref, .gpucarry); SHARED defaults to ../shared
#   bash bench/gpu_figures.sh run                # on the GPU machine; results under $OUT (default ./gpu-figures)
#
# With the device tool: run(command="bash bench/gpu_figures.sh run", carry=[".whl", ".whlref", ".gpucarry"],
# timeout_s=590). Each step has its own time limit, so a slow step leaves the others' results.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

prepare() {
    local shared=${1:-../shared} PY=${PYTHON:-.venv/bin/python}  # the project's venv: its timm is the one carried
    for d in .whl .whlref .gpucarry; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done
    local plat=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
                --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
    rm -rf .whl .whlref .gpucarry && mkdir -p .whl .whlref .gpucarry
    # the project's side: timm as pinned here (the machine's own torch, transformers, numpy, pillow are used)
    "$PY" -m pip download -q --no-deps --only-binary=:all: "${plat[@]}" -d .whl \
        "timm==$("$PY" -c 'import timm; print(timm.__version__)')" || return 1
    # the original's side: timm 0.6.13, geffnet, einops 0.6.0 (../shared/bench/README.md)
    "$PY" -m pip download -q --no-deps --only-binary=:all: "${plat[@]}" -d .whlref timm==0.6.13 geffnet einops==0.6.0 \
        || return 1
    cp -r "$shared/midas_original" .gpucarry/midas_original
    mkdir -p .gpucarry/bench .gpucarry/midas_reference
    cp "$shared/bench/zoo_vs_original.py" "$shared/bench/recipe.py" .gpucarry/bench/
    cp -r "$shared/midas_reference/manifests" .gpucarry/midas_reference/
    du -sh .whl .whlref .gpucarry
}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}"
}

run() {  # DEVICE, DTYPE and MODELS (comma list) narrow it down, e.g. for a CPU smoke test
    OUT=${OUT:-$PWD/gpu-figures}
    local device=${DEVICE:-cuda} dtype=${DTYPE:-float16} models=()
    [ -n "${MODELS:-}" ] && models=(--models "$MODELS")
    mkdir -p "$OUT"
    export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site_ours .whl/*.whl || exit 1
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site_ref .whlref/*.whl || exit 1
    nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv 2>&1 | tee "$OUT/gpu.txt"
    local ours="PYTHONPATH=$PWD:/tmp/site_ours" ref="PYTHONPATH=/tmp/site_ref"
    step zoo_speed 240 env "$ours" "$PY" bench/zoo_speed.py --device "$device" --iters 10 --warmup 3 "${models[@]}"
    step depth_e2e 120 env "$ours" "$PY" bench/depth_e2e.py --device "$device" --dtype "$dtype" "${models[@]}"
    local cmp=/tmp/gpu-figures-original cases=${CASES:-1:fp32,1:fp16,16:bf16}
    step original_ours 90 env "$ours" "$PY" .gpucarry/bench/zoo_vs_original.py --side ours --proj . --device "$device" \
        --refdata .gpucarry/midas_reference --out "$cmp" --cases "$cases" "${models[@]}"
    step original_ref 90 env "$ref" "$PY" .gpucarry/bench/zoo_vs_original.py --side ref --ref .gpucarry/midas_original \
        --device "$device" --refdata .gpucarry/midas_reference --out "$cmp" --cases "$cases" "${models[@]}"
    step original_table 30 env "$ours" "$PY" .gpucarry/bench/zoo_vs_original.py --compare "$cmp" --cases "$cases"
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    run) run ;;
    *) echo "usage: bash bench/gpu_figures.sh prepare [SHARED] | run" >&2; exit 2 ;;
esac
