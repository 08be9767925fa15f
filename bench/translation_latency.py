"""CPU latency of an exported translation SavedModel for one sentence, greedy and beam search.

    python bench/translation_latency.py RUN_DIR/saved_model [--sentences FILE] [--calls 50] [--out FILE]

Loads the SavedModel with `tensorflow` and `tensorflow_text` only (no `zoo` import), warms each
signature up, then translates one sentence a call, cycling through the first `--calls` lines of
`--sentences` (default: the source side of the model's test set when it is Multi30k in
`ZOO_DATA_DIR`, else a few built-in sentences). Reports the median and 90th percentile per
signature, with the mean source length in subwords, and appends them to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402  (registers the tokenizer ops the SavedModel uses)

FALLBACK = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.",
            "Eine Frau in einem roten Kleid steht vor einem Gebäude und wartet auf den Bus."]


def default_sentences(metadata):
    data = os.environ.get("ZOO_DATA_DIR")
    pair = metadata.get("pair", "")
    if data and pair.startswith("de->"):
        path = Path(data) / "multi30k" / "test_2016_flickr.de"
        if path.exists():
            return path.read_text(encoding="utf-8").splitlines(), str(path)
    return FALLBACK, "built-in German sentences"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("saved_model")
    parser.add_argument("--sentences", help="one source sentence a line")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "translation_latency.txt"))
    args = parser.parse_args(argv)
    path = Path(args.saved_model)
    metadata = json.loads((path / "metadata.json").read_text()) if (path / "metadata.json").exists() else {}
    if args.sentences:
        sentences, source = Path(args.sentences).read_text(encoding="utf-8").splitlines(), args.sentences
    else:
        sentences, source = default_sentences(metadata)
    sentences = [s for s in sentences if s.strip()][:args.calls]
    start = time.perf_counter()
    model = tf.saved_model.load(str(path))
    load_s = time.perf_counter() - start
    decoding = metadata.get("decoding", {})
    lines = [f"{time.strftime('%Y-%m-%d %H:%M')}  {path}  ({metadata.get('pair', '?')}, {metadata.get('model', '?')}, "
             f"{metadata.get('parameters', 0):,} parameters, beam width {decoding.get('beam_width', '?')}, "
             f"length penalty {decoding.get('length_penalty', '?')})",
             f"TensorFlow {tf.__version__}, tensorflow-text {tensorflow_text.__version__}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
             f"load {load_s:.1f} s; one sentence a call, {len(sentences)} calls after 3 warm-up, from {source}"]
    details = model.signatures["details"]
    lengths = [int(details(sentences=tf.constant([s]))["source_tokens"].numpy()[0]) for s in sentences[:20]]
    lines.append(f"mean source length (first 20): {np.mean(lengths):.1f} subwords")
    for name in ("greedy", "beam"):
        fn = model.signatures[name]
        for s in sentences[:3]:
            fn(sentences=tf.constant([s]))
        times = []
        for s in sentences:
            t = time.perf_counter()
            fn(sentences=tf.constant([s]))
            times.append(time.perf_counter() - t)
        ms = np.array(times) * 1000
        lines.append(f"  {name:7s} median {np.median(ms):7.1f} ms   p90 {np.percentile(ms, 90):7.1f} ms")
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(text + "\n\n")


if __name__ == "__main__":
    main()
