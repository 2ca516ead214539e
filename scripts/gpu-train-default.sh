#!/usr/bin/env bash
# On the lent H100, from the repo root after `. .gpu/gpu-setup.sh`: trains the built-in model
# (MODEL_CARD.md) with the WebGPU backend on the corpus that scripts/corpus-fortunes.sh made
# (carried in .gpu/corpus), then measures training throughput of the 130m shapes of both families
# (each under its own time limit). SMOKE=1 runs tiny shapes (a check of this script on lavapipe).
# Results go to $OUT: default/ (the final checkpoint without optimizer moments), train.log and
# train-<family>.json.
set -uo pipefail
out="${OUT:?}"
cd .gpu/pkg && rm -rf /tmp/default
shape=(--family mamba --preset small --batch 16 --seq-len 512)
steps=1400
bench=(--preset 130m --batch 8 --seq-len 2048)
if [ -n "${SMOKE:-}" ]; then
  shape=(--family mamba --preset tiny --batch 2 --seq-len 32) steps=20 bench=(--preset tiny --seq-len 32)
fi
node dist/src/cli/bin.js train --data ../corpus/fortunes "${shape[@]}" --out /tmp/default \
  --backend webgpu --steps "$steps" --lr 2e-3 --val-every 200 --save-every 200 --seed 0 2>&1 |
  grep -v Warning | tee "$out/train.log"
last="/tmp/default/$(cat /tmp/default/latest)"
mkdir -p "$out/default" && cp "$last"/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,trainer_state.json,loss.svg} "$out/default/"
timeout 120 node dist/src/cli/bin.js bench --train --backend webgpu --family mamba "${bench[@]}" --json "$out/train-mamba.json" 2>&1 | grep -v Warning
timeout 150 node dist/src/cli/bin.js bench --train --backend webgpu --family mamba2 "${bench[@]}" --steps 1 --json "$out/train-mamba2.json" 2>&1 | grep -v Warning
