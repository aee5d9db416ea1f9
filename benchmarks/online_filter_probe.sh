#!/bin/bash
# Diagnostic: the online pseudo-label filters of the ECOC rows over the first 60 of 3000
# steps from the warm ECOC model (the teacher is still close to it), each measured against
# the pool's hidden truth (train.measure_pseudo_labels). Each run is stopped once its
# history.jsonl reaches step 60; the precision / coverage over steps 10-60 is printed.
#
#   cd runs/ablation-code && bash /work/main/benchmarks/online_filter_probe.sh /work/main/runs/ablation 0
#
# Run from the ablation's checkout (its params.yaml and data); ROOT is the ablation's results
# root, which must hold warm/ecoc/seedN, warm/ecoc+eln/seedN and combined/seedN/pseudo.
set -u
root=${1:?results root}; seed=${2:-0}; segloop=${SEGLOOP:-segloop}
out_root=$root/probe/filters/seed$seed
common=(--set train.eval_every=100000 --set train.checkpoint_every=100000
  --set train.measure_pseudo_labels=true --set train.threads=1 --set model.head=ecoc
  --set methods.unlabeled=true --set methods.precise_bn.enabled=false
  --set train.steps=3000 --set train.seed=$seed)
u2pl=(--set methods.u2pl.enabled=true --set methods.u2pl.sce_weight=0.1)
eln=(--set methods.init_from=$root/warm/ecoc+eln/seed$seed/best.pt --set methods.eln.enabled=true
  --set methods.eln.train_during_ssl=false --set methods.eln.contrast_weight=0.0)
warm=(--set methods.init_from=$root/warm/ecoc/seed$seed/best.pt)
run() {
  local name=$1; shift; local out=$out_root/$name
  [ -f "$out/done" ] && return
  rm -rf "$out"; mkdir -p "$out_root"
  $segloop train "${common[@]}" --set train.out_dir="$out" "$@" > "$out.log" 2>&1 &
  local pid=$!
  until grep -q '"step": 60,' "$out/history.jsonl" 2>/dev/null; do
    sleep 10
    kill -0 $pid 2>/dev/null || { echo "$name stopped early: see $out.log"; return; }
  done
  kill $pid; wait $pid 2>/dev/null; touch "$out/done"
}
run threshold "${warm[@]}" --set methods.confidence_threshold=0.95   # the ecoc row
run u2pl "${warm[@]}" "${u2pl[@]}"
run u2pl+eln "${u2pl[@]}" "${eln[@]}"
run u2pl+eln+dars "${u2pl[@]}" "${eln[@]}" --set methods.pseudo_labels=$root/combined/seed$seed/pseudo
python3 - "$out_root" <<'PY'
import json, sys
from pathlib import Path
for run in ("threshold", "u2pl", "u2pl+eln", "u2pl+eln+dars"):
    path = Path(sys.argv[1]) / run / "history.jsonl"
    if not path.exists():
        continue
    rows = [json.loads(line) for line in path.open()]
    rows = [r for r in rows if "pseudo_kept_px" in r and r["step"] <= 60]
    kept, valid, right = (sum(r[k] for r in rows) for k in
                          ("pseudo_kept_px", "pseudo_valid_px", "pseudo_correct_px"))
    print(f"{run:15s} precision {100 * right / kept:.1f}%  coverage {100 * kept / valid:.1f}%")
PY
