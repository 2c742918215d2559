#!/usr/bin/env bash
# How the built-in checkpoint (lane_seg_core/weights/lane_seg_synth.pt) is made, on CPU or GPU, in three stages:
#   1. basic:   from scratch on the basic synthetic world (one road, guard rails, a few cars);
#   2. highway: fine-tuned (--init) from stage 1 on the highway world (barriers, verges of dirt and grass, the far
#               carriageway, seams and joints, bridges, hoods, dashcam cameras and optics, traffic) mixed with
#               basic frames, so that it learns what is *not* a lane on real highways;
#   3. balance: fine-tuned from stage 2 at a lower learning rate on new frames, half highway and half basic, and
#               validated on both: stage 2 alone drew lanes along the basic world's guard rails.
# INIT=some.pt skips stage 1 and runs stage 2 from that checkpoint; BALANCE_INIT=some.pt skips stages 1 and 2.
# Resumable: interrupt it (Ctrl-C, SIGTERM, `timeout`) and run it again; each stage continues from its last.pt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/synth}
RUN=${RUN:-runs/builtin}
STEPS=${STEPS:-15000}
TRAIN_FRAMES=${TRAIN_FRAMES:-3000}
VAL_FRAMES=${VAL_FRAMES:-200}
HIGHWAY_STEPS=${HIGHWAY_STEPS:-5000}
HIGHWAY_FRAMES=${HIGHWAY_FRAMES:-3000}
BASIC_MIX_FRAMES=${BASIC_MIX_FRAMES:-1000}
BALANCE_STEPS=${BALANCE_STEPS:-5000}
BALANCE_FRAMES=${BALANCE_FRAMES:-3000}  # of each world
# Stage 3 widens the model to this SegNet width first (lane-seg widen: the same outputs, more channels to learn
# with); WIDEN_TO= keeps the width.
WIDEN_TO=${WIDEN_TO-0.1875}
INIT=${INIT:-}
BALANCE_INIT=${BALANCE_INIT:-}
# Real lane geometry for the highway world: tuSimple's training label lines (no images). Without them the roads
# get random layouts, and the result differs from the shipped weights.
LAYOUTS=${LAYOUTS:-../shared/data/real/tusimple-train-labels}
layouts=()
if [ -e "$LAYOUTS" ]; then layouts=(--layouts "$LAYOUTS"); else echo "train_builtin: no $LAYOUTS; random road layouts" >&2; fi
# Where the result goes: the shipped built-in weights unless SHIP_TO says otherwise (SHIP_TO= keeps them).
SHIP_TO=${SHIP_TO-lane_seg_core/weights/lane_seg_synth.pt}
PREVIOUS="$RUN/previous_$(basename "${SHIP_TO:-none}")"
if [ -n "$SHIP_TO" ] && [ -f "$SHIP_TO" ]; then
  echo "train_builtin: at the end this replaces $SHIP_TO (the previous file is kept as $PREVIOUS);" \
       "SHIP_TO= keeps it, SHIP_TO=other.pt writes elsewhere" >&2
fi
synth() {  # synth OUT COUNT SEED WORLD NAME [OPTIONS]: a dataset, unless it is already there
  [ -f "$1/label_data_$5.json" ] || $PY -m lane_seg_core.cli synth --out "$1" --count "$2" --seed "$3" --world "$4" \
    --name "$5" "${@:6}"
}
resume_flag() { [ -f "$1/last.pt" ] && echo --resume || true; }

# Stage 1: the basic world, from scratch.
if [ -z "$INIT" ] && [ -z "$BALANCE_INIT" ]; then
  synth "$DATA/train" "$TRAIN_FRAMES" 1 basic synth
  synth "$DATA/val" "$VAL_FRAMES" 2 basic synth
  $PY -m lane_seg_core.cli train --data "$DATA/train" --val "$DATA/val" --out "$RUN/basic" \
    --width 0.125 --img-size 256 128 --crop-top 0.2 --lane-thickness 3 \
    --delta-var 0.5 --delta-dist 3.0 --seg-loss weighted_ce \
    --batch-size 8 --lr 3e-3 --warmup-steps 300 --epochs 1000 --max-steps "$STEPS" \
    --val-every 1000 --val-frames "$VAL_FRAMES" --workers 1 --seed 0 $(resume_flag "$RUN/basic")
  INIT="$RUN/basic/best.pt"
fi

# Stage 2: the highway world (plus basic frames, so the basic world is not forgotten), fine-tuned from stage 1.
if [ -z "$BALANCE_INIT" ]; then
  synth "$DATA/highway_train" "$HIGHWAY_FRAMES" 11 highway highway "${layouts[@]}"
  synth "$DATA/highway_train" "$BASIC_MIX_FRAMES" 13 basic basic
  synth "$DATA/highway_val" "$VAL_FRAMES" 12 highway highway "${layouts[@]}"
  $PY -m lane_seg_core.cli train --data "$DATA/highway_train" --val "$DATA/highway_val" --out "$RUN/highway" \
    --init "$INIT" --batch-size 8 --lr 1e-3 --warmup-steps 200 --epochs 1000 --max-steps "$HIGHWAY_STEPS" \
    --val-every 1000 --val-frames "$VAL_FRAMES" --workers 1 --seed 0 $(resume_flag "$RUN/highway")
  BALANCE_INIT="$RUN/highway/best.pt"
fi

# Stage 3: new frames of both worlds in equal parts, fine-tuned from stage 2, validated on both worlds.
if [ -n "$WIDEN_TO" ]; then
  mkdir -p "$RUN"
  [ -f "$RUN/widened.pt" ] || $PY -m lane_seg_core.cli widen --checkpoint "$BALANCE_INIT" --width "$WIDEN_TO" \
    --out "$RUN/widened.pt"
  BALANCE_INIT="$RUN/widened.pt"
fi
synth "$DATA/balance_train" "$BALANCE_FRAMES" 21 highway highway "${layouts[@]}"
synth "$DATA/balance_train" "$BALANCE_FRAMES" 23 basic basic
synth "$DATA/balance_val" $((VAL_FRAMES / 2)) 12 highway highway "${layouts[@]}"
synth "$DATA/balance_val" $((VAL_FRAMES / 2)) 2 basic basic
$PY -m lane_seg_core.cli train --data "$DATA/balance_train" --val "$DATA/balance_val" --out "$RUN/balance" \
  --init "$BALANCE_INIT" --batch-size 8 --lr 2e-4 --warmup-steps 100 --epochs 1000 \
  --max-steps "$BALANCE_STEPS" --val-every 500 --val-frames "$VAL_FRAMES" --workers 1 --seed 0 \
  $(resume_flag "$RUN/balance")

# Ship the best validation checkpoint (no optimizer state) with its lane threshold re-picked on the
# validation split by the current post-processing; SHIP_TO= (empty) skips this.
if [ -n "$SHIP_TO" ]; then
  if [ -f "$SHIP_TO" ]; then
    cp -p "$SHIP_TO" "$PREVIOUS"
    echo "train_builtin: replacing $SHIP_TO; the previous file is $PREVIOUS" >&2
  fi
  $PY -m lane_seg_core.cli tune --checkpoint "$RUN/balance/best.pt" --data "$DATA/balance_val" --out "$SHIP_TO"
fi
