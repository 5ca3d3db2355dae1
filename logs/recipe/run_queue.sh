#!/usr/bin/env bash
# Choose the recipe on the validation split (docs/results.md, "The recipe"): each candidate
# schedule trains the two rows slowest to take off (the paper's ARP and Conv4 stride) on two
# seeds, one run at a time with two threads; the last epoch's validation top-1 is in each log.
# Usage (from the repository root):
#   setsid nohup bash logs/recipe/run_queue.sh >> logs/recipe/queue.log 2>&1 &
# Summary (the last epoch of each run): grep -H "epoch 12/12" logs/recipe/*.log
set -u
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
declare -A RECIPE=(
  [step12]="--epochs 12 --warmup-fraction 0.15 --milestones 0.6 0.85"
  [cos12]="--epochs 12 --warmup-fraction 0.15 --schedule cosine"
)
QUEUE=("$@")
if [ ${#QUEUE[@]} -eq 0 ]; then
  QUEUE=(step12:arp:0 cos12:arp:0 step12:stride:0 cos12:stride:0
         step12:arp:1 cos12:arp:1 step12:stride:1 cos12:stride:1)
fi
mkdir -p runs/recipe logs/recipe
for item in "${QUEUE[@]}"; do
  IFS=: read -r recipe row seed <<< "$item"
  name=${recipe}_${row}_seed${seed}
  echo "$(date -u +%FT%TZ) start $name"
  # shellcheck disable=SC2086
  "$PY" -m arpviz.train --config "configs/synthbirds_wide_msgn_${row}.json" --threads 2 \
    --seed "$seed" --no-progress ${RECIPE[$recipe]} --out "runs/recipe/${name}.safetensors" \
    > "logs/recipe/${name}.log" 2>&1
  echo "$(date -u +%FT%TZ) end $name rc=$?"
done
echo "$(date -u +%FT%TZ) queue done"
