#!/usr/bin/env bash
# Evaluate and analyse every finished wide-scale run that has no results yet (docs/adaptivity.md).
# Usage (from the repository root): bash logs/wide/postprocess.sh [RUN_NAME]
# (one run, e.g. synthbirds_wide_msgn_arp_seed1; all finished runs without one).
# QUEUE_LOG names the queue's log (default logs/wide/queue.log), RUNS the folder of the runs
# (default runs). The analysis includes the ideal-map rates (--ideal).
set -u
PY=${PY:-/work/main/.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
pattern=${1:-synthbirds_wide_*_seed*}
QUEUE_LOG=${QUEUE_LOG:-logs/wide/queue.log}
RUNS=${RUNS:-runs}
for ckpt in "$RUNS"/${pattern}.safetensors; do
  [ -e "$ckpt" ] || continue
  case "$ckpt" in *.state.safetensors) continue ;; esac
  name=$(basename "$ckpt" .safetensors)
  # finished = the queue logged its end with rc=0 (a checkpoint is saved after every epoch)
  grep -q "end $name rc=0" "$QUEUE_LOG" || continue
  if [ ! -s "logs/wide/${name}.eval.json" ]; then
    "$PY" -m arpviz.evaluate "$ckpt" --split test > "logs/wide/${name}.eval.json.tmp" \
      2> "logs/wide/${name}.eval.err" && mv "logs/wide/${name}.eval.json.tmp" "logs/wide/${name}.eval.json"
  fi
  if [ ! -s "logs/wide/${name}.analysis.json" ]; then
    "$PY" -m arpviz.analysis "$ckpt" --split test --threads 1 --no-progress --ideal \
      --out "logs/wide/${name}.analysis.json" > "logs/wide/${name}.analysis.txt" 2>&1
  fi
done
