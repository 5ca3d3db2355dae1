#!/usr/bin/env bash
# The paired ablation (docs/results.md, "The paired ablation"): every row of
# configs/synthbirds_wide_msgn_<row>.json under the chosen recipe (in the configs), 5 seeds, one
# run at a time with two threads, seeds interleaved across rows (all rows' seed 0 first), each
# run evaluated on the test split (every image's prediction) and analysed (--ideal) as it ends.
# Usage (from the repository root):
#   setsid nohup bash logs/paired/run_queue.sh [row:seed ...] >> logs/paired/queue.log 2>&1 &
# Tables: .venv/bin/python -m arpviz.analysis.paired logs/paired
set -u
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
ROWS=(${ROWS:-arp rp stride oracle mask50 mask_mean zoom rp70 arpfg_peak})
SEEDS=(${SEEDS:-0 1 2 3 4})
QUEUE=("$@")
if [ ${#QUEUE[@]} -eq 0 ]; then
  for seed in "${SEEDS[@]}"; do
    for row in "${ROWS[@]}"; do QUEUE+=("$row:$seed"); done
  done
fi
mkdir -p runs/paired logs/paired
for item in "${QUEUE[@]}"; do
  row=${item%%:*} seed=${item##*:}
  name=${row}_seed${seed}
  ckpt=runs/paired/synthbirds_wide_msgn_${name}.safetensors
  if [ -s "logs/paired/${name}.eval.json" ]; then continue; fi
  echo "$(date -u +%FT%TZ) start $name"
  "$PY" -m arpviz.train --config "configs/synthbirds_wide_msgn_${row}.json" --threads 2 \
    --seed "$seed" --no-progress --out "$ckpt" > "logs/paired/${name}.log" 2>&1
  rc=$?
  echo "$(date -u +%FT%TZ) end $name rc=$rc"
  [ $rc -eq 0 ] || continue
  "$PY" -m arpviz.evaluate "$ckpt" --split test > "logs/paired/${name}.eval.json.tmp" \
    2> "logs/paired/${name}.eval.err" && mv "logs/paired/${name}.eval.json.tmp" \
    "logs/paired/${name}.eval.json"
  "$PY" -m arpviz.analysis "$ckpt" --split test --threads 2 --no-progress --ideal \
    --out "logs/paired/${name}.analysis.json" > "logs/paired/${name}.analysis.txt" 2>&1
  echo "$(date -u +%FT%TZ) postprocessed $name"
done
echo "$(date -u +%FT%TZ) queue done"
