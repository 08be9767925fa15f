#!/usr/bin/env bash
# One prepared run on a lent GPU machine (JAX, no TensorFlow): GPU throughput of the vision
# builders, then the `default` preset trained with bench/gpu_train_cifar10.py. Needs, carried
# from the repo root: .whl/ (keras, namex, optree wheels for Python 3.12) and .device/ (the
# mirror's cifar10-jpeg.tar.gz, materialize and SHA256SUMS). Results land in $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L | tee "$OUT/device.txt"
python3 -c "import jax, keras; print('jax', jax.__version__, 'keras', keras.__version__, jax.devices())" | tee -a "$OUT/device.txt"
python3 .device/materialize /tmp/data --only cifar10 || exit 1
timeout "${BENCH_TIMEOUT:-150}" python3 bench/gpu_throughput.py 2>&1 | grep -v "^WARNING\|^I0000\|^W0000" | tee "$OUT/gpu_throughput.txt"
python3 bench/gpu_train_cifar10.py --preset "${PRESET:-default}" --data-dir /tmp/data --output-dir /tmp/gpu_run "$@" 2>&1 \
  | grep -v "^WARNING\|^I0000\|^W0000" | tee "$OUT/gpu_train.log"
cp /tmp/gpu_run/history.csv /tmp/gpu_run/gpu_train.json "$OUT/" 2>/dev/null
# Returned files are capped at 16 MB each: split the weights, `cat weights.part-* > x.weights.h5`.
split -b 15M /tmp/gpu_run/cifar10.weights.h5 "$OUT/weights.part-"
ls -la "$OUT"
