#!/usr/bin/env bash
# One phase of the GPU measurements, run on a lent GPU machine from the repository root, with what
# scripts/device-pack.sh prepared carried in .device/ (the programs in .device/bin, one CIFAR-10
# part in .device/pN). Each phase stays well inside one 10-minute call:
#   tests   environment and versions; tests/cuda (DSC_CUDA_SYNC=1, then the timing test without
#           it); bench device (the ceilings)
#   layer   bench layer at batch 1 and 16 (forward; our depthwise kernels, cuDNN's, fused vs
#           composed; forward+backward) and the channel sweep, PyTorch's same layers beside them
#   steps   training steps on random data, ours vs PyTorch, both models, AMP and fp32
#   train [MODELS]  the seed's recipe (5 epochs, batch 128, AMP) on CIFAR-10, ours and PyTorch, for
#           MODELS (default "depsep normal"; one model per call if both do not fit in 10 minutes).
#           Needs all four data parts: run it last.
# Results accumulate in /tmp/dsc-results (kept while the machine stays warm) and every phase
# returns all of them as $OUT/results.tar.gz plus its log $OUT/<phase>.log. Unpack here with
#   tar -xzf <files_at>/results.tar.gz -C bench/results
# Every command runs under `timeout`, so one that hangs costs its own limit, not the phase.
# DSC_DEVICE_SELFTEST=1 runs the same logic on the CPU with tiny sizes (checks this script here).
set -uo pipefail
cd "$(dirname "$0")/.."
phase=${1:-}
case "$phase" in
  tests | layer | steps | train) ;;
  *) echo "usage: scripts/device-run.sh tests|layer|steps|train [MODELS]" >&2; exit 2 ;;
esac
models=${2:-depsep normal}
selftest=${DSC_DEVICE_SELFTEST:-0}
out=${OUT:-/tmp/dsc-out}
res=/tmp/dsc-results
mkdir -p "$out" "$res"
log="$out/$phase${2:+_${2// /_}}.log"
: >"$log"
say() { echo "$*" | tee -a "$log"; }

# ---- the programs -----------------------------------------------------------------------------
dsc=/tmp/dsc
if [ -f .device/bin/dsc-bin.tar.xz ]; then
  rm -rf "$dsc" && mkdir -p "$dsc" && tar -xJf .device/bin/dsc-bin.tar.xz -C "$dsc"
fi
[ -x "$dsc/bin/train" ] || { say "no programs: carry .device/bin (scripts/device-pack.sh)"; exit 1; }
# CUDA libraries: the toolkit's, then PyTorch's nvidia-* wheels (cuDNN lives only there).
py=python3
[ "$selftest" = 1 ] && py=/usr/bin/python3
site=$($py -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)
wheel_libs=$( [ -n "$site" ] && [ -d "$site/nvidia" ] &&
  find "$site/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -)
export LD_LIBRARY_PATH="$dsc/lib:/usr/local/cuda/lib64:${wheel_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
missing=$(ldd "$dsc"/bin/* 2>&1 | grep "not found" | sort -u)
[ -z "$missing" ] || { say "missing libraries:"; say "$missing"; exit 1; }

# ---- data: stash this call's part; unpack once all four are there -------------------------------
mkdir -p /tmp/parts
cp .device/p*/cifar10.tar.part-* /tmp/parts/ 2>/dev/null
say "data parts here: $(ls /tmp/parts 2>/dev/null | tr '\n' ' ')"
data=/tmp/cifar10
if [ ! -d "$data/test" ] && [ "$(ls /tmp/parts | wc -l)" = 4 ]; then
  cat /tmp/parts/cifar10.tar.part-* | tar -x -C /tmp && say "unpacked $data"
fi

# ---- helpers ------------------------------------------------------------------------------------
failures=0
# step NAME SECONDS COMMAND...: runs it with its output in the log, notes the exit status.
step() {
  local name=$1 limit=$2
  shift 2
  say ""
  say "=== $name: $* (limit ${limit}s, $(date -u +%H:%M:%SZ))"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  say "=== $name: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" = 0 ] || failures=$((failures + 1))
}
finish() {
  tar -czf "$out/results.tar.gz" -C "$res" .
  say ""
  say "phase $phase done: $failures failed step(s); results: $(ls "$res" | wc -l) files"
  exit 0
}
trap finish EXIT

if [ "$selftest" = 1 ]; then
  dev=cpu gpu=selftest
  layer=(--size 16 --channels 8 --filters 8 --batch 1,2 --min-time 0.05 --repeats 2)
  sweep=(--size 16 --channels-list 8,16 --batch 1 --min-time 0.05 --repeats 2)
  torch_layer=(--size 16 --channels 8 --filters 8 --batch 1,2 --min-time 0.05 --repeats 2)
  sweep_channels="8 16"
  steps=(--warmup 1 --iters 1 --repeats 2)
  torch_steps=(--warmup 1 --iters 1 --repeats 2)
  train_limit=(--epochs 1 --limit-train 512 --limit-test 256)
  eval_limit=(--limit-train 512 --limit-test 256)
  torch_train_limit=(--epochs 1 --limit-train 512 --limit-test 256 --warmup-epochs 0)
  precisions="fp32"
  data=${CIFAR10_DIR:-../shared/cifar10}
else
  dev=cuda
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 |
        grep -oiE 'h100|h200|a100|l40s|[a-z]+[0-9]+' | head -1 | tr 'A-Z' 'a-z')
  gpu=${gpu:-gpu}
  layer=()
  sweep=()
  torch_layer=()
  sweep_channels="8 16 32 64 128 256 512 1024 2048"
  steps=(--warmup 20 --iters 50 --repeats 5)
  torch_steps=()
  train_limit=()
  eval_limit=()
  torch_train_limit=()
  precisions="amp fp32"
fi
ceil="$res/ceilings_$dev.json"
# A phase run again replaces its own results (JSON-lines files are appended to, train logs must be new).
case "$phase" in
  layer) rm -f "$res/${gpu}"_layer* "$res/${gpu}"_sweep* ;;
  steps) rm -f "$res/${gpu}"_train_steps.jsonl ;;
  train) for m in $models; do rm -f "$res/${gpu}_train_${m}"_*.jsonl; done ;;
esac

case "$phase" in
  tests)
    step env 60 bash -c "nvidia-smi; nvcc --version | tail -2; $py -c 'import torch; \
print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"cudnn\", \
torch.backends.cudnn.version())'; uname -a; echo LD_LIBRARY_PATH=\$LD_LIBRARY_PATH"
    if [ "$selftest" = 1 ]; then
      step test_cuda 600 "$dsc/bin/test_cuda"
    else
      # Every test synchronised after each launch (a fault names its kernel); timing and step
      # graphs need the asynchronous runtime (graphs are off under DSC_CUDA_SYNC=1).
      step test_cuda_sync 420 env DSC_CUDA_SYNC=1 "$dsc/bin/test_cuda" \
        -tce="cuda timing*,cuda step graph*,cuda train*"
      step test_cuda_async 240 "$dsc/bin/test_cuda" \
        -tc="cuda timing*,cuda step graph*,cuda train*"
    fi
    step device 180 "$dsc/bin/bench" device --device "$dev" --out "$ceil"
    ;;
  layer)
    [ -f "$ceil" ] || step device 180 "$dsc/bin/bench" device --device "$dev" --out "$ceil"
    p="$res/${gpu}_layer"
    step layer 240 "$dsc/bin/bench" layer --device "$dev" --ceilings "$ceil" "${layer[@]}" \
      --kinds normal,depsep,depsep-fused --csv "$p.csv" --json "$p.jsonl"
    step layer_cudnn_dw 120 env DSC_DEPTHWISE=cudnn "$dsc/bin/bench" layer --device "$dev" \
      --ceilings "$ceil" "${layer[@]}" --kinds depsep --csv "${p}_cudnn_dw.csv" \
      --json "${p}_cudnn_dw.jsonl"
    step layer_backward 240 "$dsc/bin/bench" layer --device "$dev" --ceilings "$ceil" \
      "${layer[@]}" --backward --kinds normal,depsep,depsep-fused --csv "${p}_backward.csv" \
      --json "${p}_backward.jsonl"
    step torch_layer 240 $py bench/layer_torch.py --device "$dev" "${torch_layer[@]}" \
      --json "${p}_pytorch.jsonl"
    step torch_layer_backward 240 $py bench/layer_torch.py --device "$dev" "${torch_layer[@]}" \
      --backward --json "${p}_backward_pytorch.jsonl"
    step sweep 420 "$dsc/bin/bench" sweep --device "$dev" --ceilings "$ceil" "${sweep[@]}" \
      --csv "$res/${gpu}_sweep.csv" --json "$res/${gpu}_sweep.jsonl"
    for c in $sweep_channels; do
      if [ "$selftest" = 1 ]; then
        b=(--batch 1 --size 16 --min-time 0.05 --repeats 2)
      else
        b=(--batch 16 --min-time 0.25 --repeats 3)
      fi
      step "torch_sweep_$c" 120 $py bench/layer_torch.py --device "$dev" --channels "$c" \
        --filters "$c" "${b[@]}" --json "$res/${gpu}_sweep_pytorch.jsonl"
    done
    step plot 60 $py bench/plot.py sweep "$res/${gpu}_sweep.csv" -o "$res/${gpu}_sweep.svg"
    ;;
  steps)
    # DepSep through each implementation of the CUDA backend (fused kernels, composed ops, cuDNN's
    # depthwise, cuDNN's pointwise), AMP: which part of the step each one moves.
    if [ "$selftest" != 1 ]; then
      for sw in DSC_DEPSEP=composed DSC_DEPTHWISE=cudnn DSC_POINTWISE=cudnn; do
        step "steps_depsep_amp_ours_$sw" 120 bash -c "env $sw '$dsc/bin/train_steps' \
--model depsep --batch 128 --device $dev --precision amp ${steps[*]} \
| tee -a '$res/${gpu}_train_steps.jsonl'"
      done
    fi
    for model in normal depsep; do
      for prec in $precisions; do
        step "steps_${model}_${prec}_ours" 120 bash -c "'$dsc/bin/train_steps' --model $model \
--batch 128 --device $dev --precision $prec ${steps[*]} | tee -a '$res/${gpu}_train_steps.jsonl'"
        if [ "$dev" = cuda ]; then  # the same step replayed from one captured graph
          step "steps_${model}_${prec}_ours_graph" 120 bash -c "'$dsc/bin/train_steps' \
--model $model --batch 128 --device $dev --precision $prec --graph on ${steps[*]} \
| tee -a '$res/${gpu}_train_steps.jsonl'"
        fi
        for fmt in "" --channels-last; do
          step "steps_${model}_${prec}_pytorch$fmt" 180 bash -c "$py bench/torch_peer.py steps \
--model $model --batch 128 --device $dev --precision $prec $fmt ${torch_steps[*]} \
--out '$res/${gpu}_train_steps.jsonl'"
        done
      done
    done
    ;;
  train)
    [ -d "$data/test" ] || { say "no data: carry .device/p1 ... p4 in four calls first"; exit 1; }
    if [ "$dev" = cuda ]; then  # train --device cuda with and without step graphs, real images
      step test_cuda_train 300 env CIFAR10_DIR="$data" "$dsc/bin/test_cuda" -tc="cuda train*"
    fi
    for model in $models; do
      step "train_${model}_ours" 300 "$dsc/bin/train" --model "$model" --batch 128 \
        --device "$dev" --data "$data" --no-progress "${train_limit[@]}" \
        --log "$res/${gpu}_train_${model}_ours.jsonl" --save "/tmp/dsc-$model.ckpt"
      # The checkpoint saved from the GPU, reloaded there: the same test accuracy as the run's end.
      step "reload_${model}" 120 "$dsc/bin/train" --model "$model" --device "$dev" \
        --data "$data" --no-progress "${eval_limit[@]}" --epochs 0 \
        --load "/tmp/dsc-$model.ckpt"
      step "train_${model}_pytorch" 420 $py bench/torch_peer.py train --model "$model" \
        --batch 128 --device "$dev" --precision "$([ "$selftest" = 1 ] && echo fp32 || echo amp)" \
        --channels-last --data "$data" "${torch_train_limit[@]}" \
        --log "$res/${gpu}_train_${model}_pytorch.jsonl"
    done
    step compare 30 "$dsc/bin/train" --compare "$res"/"${gpu}"_train_*_ours.jsonl \
      "$res"/"${gpu}"_train_*_pytorch.jsonl
    ;;
esac
