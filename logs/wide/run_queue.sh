#!/usr/bin/env bash
# Train the wide-scale SynthBirds ablation (docs/adaptivity.md), two runs at a time, one thread each,
# and evaluate and analyse each run as it finishes (logs/wide/postprocess.sh).
# Usage (from the repository root):
#   setsid nohup bash logs/wide/run_queue.sh [row:seed ...] >> logs/wide/queue.log 2>&1 &
# With no arguments it runs the whole 3-seed table. DEADLINE (a `date -d` string) stops it from
# starting a run that is not expected to finish (RUN_MINUTES, default 40) before then.
# POSTPROCESS=0 leaves evaluation and analysis for later (bash logs/wide/postprocess.sh).
set -u
PY=${PY:-/work/main/.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RUN_MINUTES=${RUN_MINUTES:-40}
QUEUE=("$@")
if [ ${#QUEUE[@]} -eq 0 ]; then
  QUEUE=(
    msgn_arp:0 msgn_stride:0 msgn_rp:0 msgn_stn:0 baseline_stride:0 baseline_arp:0
    msgn_arp:1 msgn_stride:1 msgn_rp:1 msgn_stn:1 baseline_stride:1 baseline_arp:1
    msgn_arp:2 msgn_stride:2 msgn_rp:2 msgn_stn:2 baseline_stride:2 baseline_arp:2
  )
fi
mkdir -p runs logs/wide
run_one() {
  local row=${1%%:*} seed=${1##*:}
  local name=synthbirds_wide_${row}_seed${seed}
  echo "$(date -u +%FT%TZ) start $name"
  "$PY" -m arpviz.train --config "configs/synthbirds_wide_${row}.json" --threads 1 \
    --seed "$seed" --no-progress --out "runs/${name}.safetensors" > "logs/wide/${row}_seed${seed}.log" 2>&1
  local rc=$?
  echo "$(date -u +%FT%TZ) end $name rc=$rc"
  if [ "${POSTPROCESS:-1}" != 0 ]; then
    bash logs/wide/postprocess.sh "$name"
    echo "$(date -u +%FT%TZ) postprocessed $name"
  fi
}
for item in "${QUEUE[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
  if [ -n "${DEADLINE:-}" ] && \
     [ $(( $(date +%s) + RUN_MINUTES * 60 )) -gt "$(date -d "$DEADLINE" +%s)" ]; then
    echo "$(date -u +%FT%TZ) deadline $DEADLINE: not starting $item or later runs"
    break
  fi
  run_one "$item" &
  sleep 2
done
wait
echo "$(date -u +%FT%TZ) queue done"
