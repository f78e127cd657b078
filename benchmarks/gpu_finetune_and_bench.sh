#!/bin/bash
# One call on a lent GPU machine (15 minutes of device time in all): the GPU segmentation
# timing (bench_segment_gpu.py), then a fine-tune of the shipped network on the GPU with
# synthesis on the CPU cores. Everything it returns is written to $OUT.
#
# It expects, beside the working tree (neither is committed):
#   .whl/      wheels of what the GPU image lacks: monai, nibabel, pydicom
#   .devdata/  cache/ (phantom_<seed>.npz, panoptica_<seed>.npz, totalseg.npz written by
#              `spinemetrics train --cache`) and init.pt (the network to fine-tune)
# Usage: OUT=<folder> MINUTES=7 SEED=3 [LR=4e-4 BENCH_ARGS="--repeat 7 --batch 24"] bash benchmarks/gpu_finetune_and_bench.sh
set -u
export PYTHONUNBUFFERED=1
MINUTES=${MINUTES:-7}
SEED=${SEED:-3}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-14}
LR=${LR:-4e-4}
BENCH_ARGS=${BENCH_ARGS:---repeat 7}
exec > >(tee -a "$OUT/device.log") 2>&1
date
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "cores: $(nproc)"; python3 -V
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__, 'cuda', torch.cuda.is_available())"

# 1. timing (bounded: the fine-tune is worth more than a hung benchmark)
timeout 150 python3 benchmarks/bench_segment_gpu.py --device "$DEVICE" $BENCH_ARGS --json "$OUT/gpu_bench.json"
echo "bench rc=$?"; date

# 2. fine-tune: 14 synthesis workers feed batches of 32 to the GPU (bf16 autocast)
python3 -m spinemetrics train -o /tmp/run --cache .devdata/cache --cached-only --phantoms 96 \
  --init .devdata/init.pt --lr "$LR" --steps 200000 --batch 32 --workers "$WORKERS" \
  --minutes "$MINUTES" --checkpoint-minutes 1 --threads 2 --seed "$SEED" --device "$DEVICE" \
  --class-weights 1,1,2,1,1.5,1.5,2,4,2,3,1,1 --p-offmid 0.4 > /tmp/train.log 2>&1 &
TRAIN=$!
# copy each new checkpoint back as it appears (kept: the three latest, for weight averaging),
# so that a call stopped at its limit still returns the work done
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
cp /tmp/run/best.pt "$OUT/best.pt" 2>/dev/null
cp /tmp/run/last.pt "$OUT/last.pt" 2>/dev/null
date
