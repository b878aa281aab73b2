#!/bin/bash
# What a GPU can show in about ten minutes: what more training buys the default DDPM, and the
# sampling benchmark on CUDA. Run from the repository root after the default run has made the
# data set and the judge (or point DATA and JUDGE elsewhere); everything lands in OUT.
#
#   OUT=gpu_out bash benchmarks/gpu_check.sh
#
# 1. config.yaml's DDPM recipe (CONFIG; 2,000 steps), then its quality (`gradcheck ddpm-quality`, 96
#    full-length unguided samples): the same recipe as the CPU run, on other hardware.
# 2. The same recipe over as many steps as TRAIN_SECONDS buys at the rate step 1 measured (a
#    multiple of 2,000; the cosine schedule anneals over all of them), with snapshots, and its
#    quality curve; the final weights are packed into OUT/ddpm_long.tar (`tar xf` gives a
#    DDPMPipeline directory for `gradcheck sample --ddpm`).
# 3. benchmarks/sampling_speed.py on the device, for config.yaml's UNet and the paper's.
# WHEELS names a folder of wheels to install first where the machine lacks a package (diffusers).
# The H200 numbers in benchmarks/README.md and docs/archive/2026-12-02-earlier-runs.md were taken with config.yaml's recipe of the day, batch 64:
#   OUT=gpu_out EXTRA="--batch-size 64" bash benchmarks/gpu_check.sh
set -u
T0=$(date +%s)
OUT=${OUT:?set OUT to an output folder}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-results/data/sportballs.npz}
JUDGE=${JUDGE:-results/models/judge.pt}
PROBE_STEPS=${PROBE_STEPS:-2000}
TRAIN_SECONDS=${TRAIN_SECONDS:-220}
QUALITY=${QUALITY:-"--batch-size 96 --num-samples 32 --seeds 0 1 2 --steps all --unet-dtype bfloat16"}
BENCH=${BENCH:-"--repeats 3"}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1

if [ -n "${WHEELS:-}" ] && ! python3 -c "import diffusers" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
python3 -c "import torch, diffusers, torchvision; print('torch', torch.__version__, 'torchvision',
  torchvision.__version__, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())"

recipe_flags() {  # CONFIG's ddpm section as train-ddpm flags, less the lengths this script sets itself
  python3 - "${CONFIG:-config.yaml}" <<'PY'
import sys, yaml
ddpm = yaml.safe_load(open(sys.argv[1]))["ddpm"]
word = lambda v: str(v).lower() if isinstance(v, bool) else str(v)
print(" ".join(f"--{k.replace('_', '-')} " + " ".join(map(word, v if isinstance(v, list) else [v]))
               for k, v in ddpm.items() if k not in ("steps", "snapshot_every", "checkpoint_every")))
PY
}
# EXTRA: train-ddpm flags that override CONFIG's (the last of a repeated flag wins), e.g. "--batch-size 64"
RECIPE="--data $DATA $(recipe_flags) --device $DEVICE --threads 0 --checkpoint-every 1000000 ${EXTRA:-}"
echo "recipe: $RECIPE"
quality() {  # $1 DDPM directory, $2 output name
  python3 -m gradcheck ddpm-quality --ddpm "$1" --judge "$JUDGE" --data "$DATA" $QUALITY \
    --csv "$OUT/$2.csv" --figure "$OUT/$2.png" --device "$DEVICE" --threads 0 2>&1 | tr "\r" "\n" | grep -v "it/s\]"
  cat "$OUT/$2.csv"
}
train() {  # $1 steps, $2 snapshot interval, $3 output directory
  python3 -m gradcheck train-ddpm $RECIPE --out "$3" --work-dir "$3.ckpt" --steps "$1" --snapshot-every "$2" 2>&1 \
    | tr '\r' '\n' | grep -v "it/s, loss" | tail -3
}

echo "== 1. the default recipe, $PROBE_STEPS steps"
s=$(date +%s.%N)
train "$PROBE_STEPS" 0 /tmp/ddpm_probe
e=$(date +%s.%N)
rate=$(python3 -c "print($PROBE_STEPS / ($e - $s))")
echo "trained $PROBE_STEPS steps in $(python3 -c "print(round($e - $s, 1))") s (process start included): $rate steps/s"
quality /tmp/ddpm_probe "ddpm_$PROBE_STEPS"

N=$(python3 -c "print(max(2, min(30, int($rate * $TRAIN_SECONDS / 2000))) * 2000)")
EVERY=$(python3 -c "n = $N; print(max(2000, -(-n // 8000) * 1000))")  # at most eight snapshots
echo "== 2. the default recipe, $N steps (cosine decay over all of them), snapshots every $EVERY"
s=$(date +%s.%N)
train "$N" "$EVERY" /tmp/ddpm_long
e=$(date +%s.%N)
echo "trained $N steps in $(python3 -c "print(round($e - $s, 1))") s"
quality /tmp/ddpm_long ddpm_long
(cd /tmp/ddpm_long && tar cf "$OUT/ddpm_long.tar" model_index.json scheduler unet training.json)
echo "elapsed $(( $(date +%s) - T0 )) s"

echo "== 3. sampling speed on $DEVICE"
for unet in cpu paper; do
  timeout 75 python3 benchmarks/sampling_speed.py --device "$DEVICE" --unet $unet $BENCH 2>&1 \
    | tr "\r" "\n" | grep -v "it/s\]"
done
echo "done in $(( $(date +%s) - T0 )) s"
