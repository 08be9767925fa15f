#!/usr/bin/env bash
# Variants of the `default` CIFAR-10 preset trained side by side on one lent GPU (JAX backend),
# to choose the preset; returns every run's history and the best run's weights in $OUT.
# Carry .whl/ and .device/ as for bench/device_cifar10.sh. Each variant is a line of flags.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
python3 .device/materialize /tmp/data --only cifar10 >/dev/null || exit 1
i=0
while read -r flags; do
  [ -z "$flags" ] && continue
  i=$((i + 1))
  echo "run$i: $flags" | tee -a "$OUT/sweep.log"
  timeout "${RUN_TIMEOUT:-330}" python3 bench/gpu_train_cifar10.py --preset "${PRESET:-default}" --data-dir /tmp/data \
    --output-dir "/tmp/sweep/run$i" $flags > "/tmp/sweep-run$i.log" 2>&1 &
done < "${1:-/dev/stdin}"
wait
for log in /tmp/sweep-run*.log; do echo "== $log"; grep -v "^W1\|^I0\|^WARNING" "$log" | tail -n 4; done | tee -a "$OUT/sweep.log"
best=$(python3 - <<'PY'
import json, glob
runs = {p.split("/")[-2]: json.load(open(p))["final"].get("val_accuracy", 0) for p in glob.glob("/tmp/sweep/run*/gpu_train.json")}
print(max(runs, key=runs.get) if runs else "")
PY
)
echo "best: $best" | tee -a "$OUT/sweep.log"
tar czf "$OUT/sweep_runs.tgz" -C /tmp/sweep --exclude='*.h5' . 
[ -n "$best" ] && split -b 15M "/tmp/sweep/$best/cifar10.weights.h5" "$OUT/weights.part-"
ls -la "$OUT"
