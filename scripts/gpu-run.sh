#!/usr/bin/env bash
# The GPU check, as ONE call of the device tool (10 minutes at most), on the lent GPU machine, from
# the repository root, with .gpu/ carried (scripts/gpu-pack.sh prepares it here):
#   run(command="bash scripts/gpu-run.sh", carry=[".gpu"], timeout_s=600)
# Steps, in order of what they prove (each under `timeout`; skipped when the internal deadline,
# DSC_GPU_DEADLINE seconds after the start, default 520, is too near):
#   env       nvidia-smi, nvcc, the CUDA / cuDNN / cuBLAS libraries found, PyTorch's versions
#   tests_*   tests/cuda, one process per source file, asynchronous; a failing file again with
#             DSC_CUDA_SYNC=1 (tests_sync_*), which names the kernel that faults
#   nccl      tests/nccl: data-parallel training's NCCL collectives on this GPU as one rank
#             (PyTorch's libnccl), also recorded in a CUDA graph
#   steps_*   training steps of both models (AMP): ours replayed from a step graph and eager, the
#             DepSep layers fused and composed; PyTorch (AMP + GradScaler, NCHW and channels_last)
#   train_*   the seed's recipe (5 epochs, batch 128, AMP) on the carried 10,000-image subset,
#             ours and PyTorch (channels_last), both models
#   bench_*   bench device (ceilings), then (profile_*) the step profile of both models, rows
#             timed by CUDA events; bench layer at batch 16 fp16, forward and forward+backward,
#             beside PyTorch's same layers
#   compile_* PyTorch with torch.compile (if time is left)
#   sanitize_* compute-sanitizer racecheck and synccheck on the DepSep and depthwise tests
# Everything lands in $OUT: run.log (the whole log, written as it goes) and results.tgz (every
# result file so far, re-packed after EVERY step, so a call cut short still returns what ran;
# status.jsonl in it has each step's exit code and seconds).
# Unpack here with: tar -xzf <files_at>/results.tgz -C <folder>.
# Options: --only NAME,NAME (rerun just those steps; a name ending in * is a prefix).
# DSC_GPU_SELFTEST=1 runs the same steps on this machine's CPU with tiny sizes, the programs taken
# from $BUILD_DIR (default build) and the data from $CIFAR10_DIR (or ../shared/cifar10); CI runs it
# (tests/CMakeLists.txt) so that this script cannot rot between GPU sessions.
set -uo pipefail
cd "$(dirname "$0")/.."
t_start=$SECONDS
deadline=${DSC_GPU_DEADLINE:-520}
selftest=${DSC_GPU_SELFTEST:-0}
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=${2:-}; shift 2 ;;
    *) echo "gpu-run.sh: unknown option '$1' (expected --only NAME,...)" >&2; exit 2 ;;
  esac
done
out=${OUT:-/tmp/dsc-gpu-out}
work=$(mktemp -d /tmp/dsc-gpu.XXXXXX)
res=$work/results
mkdir -p "$out" "$res"
log=$out/run.log
: >"$log"
say() { echo "$*" | tee -a "$log"; }

# ---- programs, libraries, data ---------------------------------------------------------------
if [ "$selftest" = 1 ]; then
  build=${BUILD_DIR:-build}
  bin=$work/bin
  mkdir -p "$bin"
  for p in bin/train bin/bench bin/train_steps bin/compare tests/test_cuda tests/test_nccl; do
    [ -e "$build/$p" ] && ln -s "$(cd "$build" && pwd)/$p" "$bin/$(basename "$p")"
  done
  py=/usr/bin/python3
  src=${CIFAR10_DIR:-../shared/cifar10}
  data=$work/cifar10
  [ -d "$src" ] || { say "selftest: no CIFAR-10 at $src (skipped)"; exit 77; }
  "$(cd "$build" && pwd)/bin/pack" "$src" "$data" --limit-train 192 --limit-test 64 >/dev/null 2>&1 ||
    { say "selftest: could not pack $src"; exit 1; }
  dev=cpu
else
  [ -f .gpu/dsc.tar.xz ] || { say "no .gpu/dsc.tar.xz: run scripts/gpu-pack.sh and carry .gpu"; exit 1; }
  mkdir -p "$work/dsc" && tar -xJf .gpu/dsc.tar.xz -C "$work/dsc"
  bin=$work/dsc/bin
  py=python3
  data=.gpu/cifar10
  dev=cuda
  # CUDA libraries: the toolkit's, then PyTorch's nvidia-* wheels (cuDNN lives only there).
  site=$($py -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)
  wheel_libs=$( [ -n "$site" ] && [ -d "$site/nvidia" ] &&
    find "$site/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -)
  export LD_LIBRARY_PATH="$work/dsc/lib:/usr/local/cuda/lib64:${wheel_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
have_torch=0
$py -c 'import torch' 2>/dev/null && have_torch=1

# ---- steps ------------------------------------------------------------------------------------
declare -A status
order=()
failed=0 late=0
pack() { tar -czf "$out/results.tgz.tmp" -C "$res" . && mv "$out/results.tgz.tmp" "$out/results.tgz"; }
wanted() {
  [ -z "$only" ] && return 0
  local n
  for n in ${only//,/ }; do  # (unquoted on purpose: split at the commas)
    case "$n" in
      *\*) [[ "$1" == "${n%\*}"* ]] && return 0 ;;
      *) [ "$1" = "$n" ] && return 0 ;;
    esac
  done
  return 1
}
# step NAME LIMIT COMMAND...: runs it under timeout, its output in the log, and re-packs results.
step() {
  local name=$1 limit=$2
  shift 2
  wanted "$name" || return 0
  order+=("$name")
  local left=$((deadline - (SECONDS - t_start)))
  if [ "$left" -lt $((limit < 20 ? limit : 20)) ]; then
    status[$name]="skipped (deadline: ${left}s left)"
    late=$((late + 1))
    say "=== $name: skipped, ${left}s left before the deadline"
    echo "{\"step\": \"$name\", \"skipped\": \"deadline\"}" >>"$res/status.jsonl"
    pack
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say ""
  say "=== $name: $* (limit ${limit}s, at $((SECONDS - t_start))s)"
  local t0=$SECONDS
  timeout -k 5 "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  status[$name]="exit $rc after $((SECONDS - t0))s"
  [ "$rc" = 124 ] && status[$name]="timed out after ${limit}s"
  say "=== $name: ${status[$name]}"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - t0))}" >>"$res/status.jsonl"
  [ "$rc" = 0 ] || failed=$((failed + 1))
  pack
  return "$rc"
}
torch_step() {  # a PyTorch step, recorded as skipped where PyTorch is missing (a CPU self-test)
  if [ "$have_torch" = 1 ]; then step "$@"; else
    wanted "$1" && { order+=("$1"); status[$1]="skipped (no PyTorch)"; say "=== $1: skipped, no PyTorch"; }
  fi
  return 0
}

if [ "$selftest" = 1 ]; then
  steps_args=(--batch 8 --warmup 1 --iters 1 --repeats 2)
  torch_steps_args=(--batch 8 --warmup 1 --iters 1 --repeats 2)
  train_args=(--epochs 1 --batch 64)
  torch_train_args=(--epochs 1 --batch 64 --precision fp32 --warmup-epochs 0)
  layer_args=(--size 16 --channels 8 --filters 8 --batch 2 --dtype fp32 --min-time 0.02 --repeats 2)
  torch_layer_args=(--size 16 --channels 8 --filters 8 --batch 2 --dtype fp32 --min-time 0.02 --repeats 2)
  device_args=(--copy-mb 8 --gemm-n 256 --min-time 0.02 --repeats 2)
  precision=fp32
else
  steps_args=(--batch 128 --warmup 20 --iters 50 --repeats 5)
  torch_steps_args=(--batch 128 --warmup 20 --iters 50 --repeats 5)
  train_args=(--epochs 5 --batch 128)
  torch_train_args=(--epochs 5 --batch 128 --precision amp)
  layer_args=(--batch 16 --dtype fp16)
  torch_layer_args=(--batch 16 --dtype fp16)
  device_args=()
  precision=amp
fi

# 1. versions
step env 60 bash -c "nvidia-smi || true; nvcc --version | tail -2 || true; \
$py -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"cudnn\", \
torch.backends.cudnn.version(), \"gpu\", torch.cuda.get_device_name(0) if torch.cuda.is_available() \
else None)' || true; ldd $bin/test_cuda | grep -Ei 'cud|blas|not found' || true; uname -a"
step gpu_info 60 "$bin/test_cuda" -tc="gpu_description*,cuda availability*" -s

# 2. the CUDA tests, one process per source file; failures again, synchronised
for f in runtime kernels conv depsep graph training train; do
  step "tests_$f" 120 env CIFAR10_DIR="$data" "$bin/test_cuda" -sf="*test_cuda_$f.cpp" \
    --duration=true ||
    step "tests_sync_$f" 120 env CIFAR10_DIR="$data" DSC_CUDA_SYNC=1 "$bin/test_cuda" \
      -sf="*test_cuda_$f.cpp" --duration=true
done
[ -x "$bin/test_nccl" ] && step nccl 60 "$bin/test_nccl" --duration=true

# 3. training steps, ours (graph-replayed and eager; DepSep fused and composed) and PyTorch
for model in depsep normal; do
  step "steps_${model}_graph" 90 bash -c "'$bin/train_steps' --model $model --device $dev \
--precision $precision --graph $([ $dev = cuda ] && echo on || echo off) ${steps_args[*]} \
>> '$res/train_steps.jsonl'"
  step "steps_${model}_eager" 90 bash -c "'$bin/train_steps' --model $model --device $dev \
--precision $precision ${steps_args[*]} >> '$res/train_steps.jsonl'"
done
step steps_depsep_composed_graph 90 bash -c "'$bin/train_steps' --model depsep --device $dev \
--precision $precision --depsep composed --graph $([ $dev = cuda ] && echo on || echo off) \
${steps_args[*]} >> '$res/train_steps.jsonl'"
for model in depsep normal; do
  for fmt in "" --channels-last; do
    torch_step "steps_${model}_pytorch${fmt:+_cl}" 120 $py bench/torch_peer.py steps \
      --model "$model" --device "$dev" --precision "$precision" $fmt "${torch_steps_args[@]}" \
      --out "$res/train_steps.jsonl"
  done
done

# 4. the seed's recipe on the carried subset, ours and PyTorch
for model in depsep normal; do
  step "train_${model}" 120 "$bin/train" --model "$model" --device "$dev" --data "$data" \
    "${train_args[@]}" --no-progress --log "$res/train_${model}_ours.jsonl"
  torch_step "train_${model}_pytorch" 150 $py bench/torch_peer.py train --model "$model" \
    --device "$dev" --channels-last --data "$data" "${torch_train_args[@]}" \
    --log "$res/train_${model}_pytorch.jsonl"
done
step compare 30 bash -c "'$bin/compare' '$res'/train_depsep_*.jsonl '$res'/train_normal_*.jsonl \
> '$res/compare.md'"

# 5. ceilings; the step profile of both models (rows timed by CUDA events); single layers at
# batch 16 fp16, forward and forward+backward, PyTorch beside
step bench_device 90 "$bin/bench" device --device "$dev" "${device_args[@]}" \
  --out "$res/ceilings_$dev.json"
for model in depsep normal; do  # where the step's time goes, timed by CUDA events on a GPU
  step "profile_${model}" 90 bash -c "'$bin/train_steps' --model $model --device $dev \
--precision $precision ${steps_args[*]} --profile --profile-steps 10 \
--ceilings '$res/ceilings_$dev.json' > '$res/profile_${model}.txt'"
done
step bench_layer 90 "$bin/bench" layer --device "$dev" "${layer_args[@]}" \
  --kinds normal,depsep,depsep-fused --ceilings "$res/ceilings_$dev.json" --json "$res/layer.jsonl"
step bench_layer_backward 90 "$bin/bench" layer --device "$dev" "${layer_args[@]}" --backward \
  --kinds normal,depsep,depsep-fused --ceilings "$res/ceilings_$dev.json" \
  --json "$res/layer_backward.jsonl"
torch_step bench_layer_pytorch 90 $py bench/layer_torch.py --device "$dev" "${torch_layer_args[@]}" \
  --json "$res/layer_pytorch.jsonl"
torch_step bench_layer_backward_pytorch 90 $py bench/layer_torch.py --device "$dev" \
  "${torch_layer_args[@]}" --backward --json "$res/layer_backward_pytorch.jsonl"

# 6. if time is left: torch.compile, then compute-sanitizer
if [ "$dev" = cuda ]; then
  for model in depsep normal; do
    torch_step "compile_${model}_pytorch" 120 $py bench/torch_peer.py steps --model "$model" \
      --device cuda --precision amp --channels-last --compile "${torch_steps_args[@]}" \
      --out "$res/train_steps.jsonl"
  done
  for tool in racecheck synccheck; do
    step "sanitize_${tool}" 90 compute-sanitizer --tool "$tool" --error-exitcode 9 \
      "$bin/test_cuda" -tc='cuda depsep entries: fused forward and backward*,cuda depthwise conv2d\, own*'
  done
fi

# ---- summary ----------------------------------------------------------------------------------
say ""
say "summary after $((SECONDS - t_start))s (deadline ${deadline}s), $failed step(s) failed:"
for n in "${order[@]}"; do say "  $n: ${status[$n]}"; done
pack
if [ "$selftest" = 1 ]; then  # the self-test also checks what a GPU call would bring back
  missing=$failed
  files=(status.jsonl train_steps.jsonl train_depsep_ours.jsonl train_normal_ours.jsonl compare.md
         ceilings_cpu.json profile_depsep.txt layer.jsonl layer_backward.jsonl)
  [ "$late" -gt 0 ] && files=(status.jsonl)  # a run cut short by its deadline brings back less
  for f in "${files[@]}"; do
    tar -tzf "$out/results.tgz" "./$f" >/dev/null 2>&1 || { say "selftest: $f missing"; missing=1; }
  done
  rm -rf "$work"
  exit "$missing"
fi
rm -rf "$work"
exit 0
