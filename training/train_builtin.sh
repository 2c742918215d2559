#!/usr/bin/env bash
# How the built-in checkpoint (lane_seg_core/weights/lane_seg_synth.pt) is made, on CPU or GPU.
# Resumable: interrupt it (Ctrl-C, SIGTERM, `timeout`) and run it again; it continues from RUN/last.pt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/synth}
RUN=${RUN:-runs/builtin}
STEPS=${STEPS:-15000}
TRAIN_FRAMES=${TRAIN_FRAMES:-3000}
VAL_FRAMES=${VAL_FRAMES:-200}
# Where the result goes: the shipped built-in weights unless SHIP_TO says otherwise (SHIP_TO= keeps them).
SHIP_TO=${SHIP_TO-lane_seg_core/weights/lane_seg_synth.pt}
PREVIOUS="$RUN/previous_$(basename "${SHIP_TO:-none}")"
if [ -n "$SHIP_TO" ] && [ -f "$SHIP_TO" ]; then
  echo "train_builtin: at the end this replaces $SHIP_TO (the previous file is kept as $PREVIOUS);" \
       "SHIP_TO= keeps it, SHIP_TO=other.pt writes elsewhere" >&2
fi

[ -f "$DATA/train/label_data_synth.json" ] || $PY -m lane_seg_core.cli synth --out "$DATA/train" --count "$TRAIN_FRAMES" --seed 1
[ -f "$DATA/val/label_data_synth.json" ] || $PY -m lane_seg_core.cli synth --out "$DATA/val" --count "$VAL_FRAMES" --seed 2

resume=()
[ -f "$RUN/last.pt" ] && resume=(--resume)
$PY -m lane_seg_core.cli train --data "$DATA/train" --val "$DATA/val" --out "$RUN" \
  --width 0.125 --img-size 256 128 --crop-top 0.2 --lane-thickness 3 \
  --delta-var 0.5 --delta-dist 3.0 --seg-loss weighted_ce \
  --batch-size 8 --lr 3e-3 --warmup-steps 300 --epochs 1000 --max-steps "$STEPS" \
  --val-every 1000 --val-frames "$VAL_FRAMES" --workers 1 --seed 0 "${resume[@]}"

# Ship the best validation checkpoint (no optimizer state) with its lane threshold re-picked on the
# validation split by the current post-processing; SHIP_TO= (empty) skips this.
if [ -n "$SHIP_TO" ]; then
  if [ -f "$SHIP_TO" ]; then
    cp -p "$SHIP_TO" "$PREVIOUS"
    echo "train_builtin: replacing $SHIP_TO; the previous file is $PREVIOUS" >&2
  fi
  $PY -m lane_seg_core.cli tune --checkpoint "$RUN/best.pt" --data "$DATA/val" --out "$SHIP_TO"
fi
