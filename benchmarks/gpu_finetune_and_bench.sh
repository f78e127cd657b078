#!/bin/bash
# One call on a lent GPU machine (15 minutes of device time in all): a fine-tune of a
# network on the GPU with synthesis on the CPU cores (optionally widened first), then the
# GPU segmentation timing (bench_segment_gpu.py) of the trained weights. Everything it
# returns is written to $OUT; checkpoints are copied there as they appear, so a call
# stopped at its limit still returns the work done.
#
# It expects, beside the working tree (neither is committed):
#   .whl/      wheels of what the GPU image lacks: monai, nibabel, pydicom
#   .devdata/  init.pt (the network to fine-tune) and real/ (panoptica_<SEED>.npz and
#              totalseg.npz, written by `spinemetrics train --cache`). The 96 phantoms
#              are rendered there on all cores (~15 s), which is cheaper than carrying them.
# Usage: OUT=<folder> MINUTES=7 SEED=5 [LR=5e-4 WIDEN=24,48,96,192,384 BENCH=1]
#        bash benchmarks/gpu_finetune_and_bench.sh
set -u
export PYTHONUNBUFFERED=1
MINUTES=${MINUTES:-7}
SEED=${SEED:-5}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-14}
LR=${LR:-5e-4}
WIDEN=${WIDEN:-}
BENCH=${BENCH:-1}
BENCH_ARGS=${BENCH_ARGS:---repeat 5}
exec > >(tee -a "$OUT/device.log") 2>&1
date
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "cores: $(nproc)"; python3 -V
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__, 'cuda', torch.cuda.is_available())"

# 0. the phantoms, rendered by this checkout's phantom code (its fingerprint matches)
mkdir -p /tmp/cache && cp .devdata/real/*.npz /tmp/cache/
OMP_NUM_THREADS=1 python3 - <<'PY'
from multiprocessing import Pool
from spinemetrics.segment.sources import phantom_source
def render(seed):
    phantom_source(seed, "/tmp/cache")
    return seed
with Pool(16) as pool:
    print("rendered", len(pool.map(render, range(96))), "phantoms")
PY
date

# 1. fine-tune: synthesis workers feed batches of 32 to the GPU (bf16 autocast)
WIDEN_ARG=""; [ -n "$WIDEN" ] && WIDEN_ARG="--widen $WIDEN"
python3 -m spinemetrics train -o /tmp/run --cache /tmp/cache --cached-only --phantoms 96 \
  --init .devdata/init.pt $WIDEN_ARG --lr "$LR" --steps 200000 --batch 32 --workers "$WORKERS" \
  --minutes "$MINUTES" --checkpoint-minutes 1 --threads 2 --seed "$SEED" --device "$DEVICE" \
  --class-weights 1,1,2,1,1.5,1.5,2,4,2,3,1,1 --p-offmid 0.5 > /tmp/train.log 2>&1 &
TRAIN=$!
# copy each new checkpoint back as it appears (kept: the three latest, for weight averaging)
k=0; last=""
while kill -0 $TRAIN 2>/dev/null; do
  sleep 5
  if [ -f /tmp/run/last.pt ]; then
    m=$(stat -c %Y /tmp/run/last.pt)
    if [ "$m" != "$last" ]; then
      sleep 2; last=$m
      cp /tmp/run/last.pt /tmp/snap.pt && mv /tmp/snap.pt "$OUT/snap_$((k % 3)).pt"
      cp /tmp/run/log.csv "$OUT/log.csv"; k=$((k + 1)); tail -n 1 /tmp/run/log.csv
    fi
  fi
done
wait $TRAIN; echo "train rc=$?"
tail -n 20 /tmp/train.log
cp /tmp/run/log.csv "$OUT/" 2>/dev/null
cp /tmp/run/last.pt "$OUT/last.pt" 2>/dev/null
date

# 2. timing of the trained weights (bounded: the fine-tune is worth more than a hung bench)
if [ "$BENCH" = 1 ] && [ -f /tmp/run/last.pt ]; then
  timeout 100 python3 benchmarks/bench_segment_gpu.py --device "$DEVICE" --weights /tmp/run/last.pt \
    $BENCH_ARGS --batch 0 --json "$OUT/gpu_bench.json"
  echo "bench rc=$?"
  if [ "$SECONDS" -lt 470 ]; then  # the shipped weights on the same machine, time allowing
    timeout 70 python3 benchmarks/bench_segment_gpu.py --device "$DEVICE" $BENCH_ARGS --batch 0 \
      --json "$OUT/gpu_bench_shipped.json"
    echo "bench (shipped) rc=$?"
  fi
fi
date
