"""Decoding a dataset's clips: `zoo.data.audio.decode_audio_files` (soundfile, one file at a
time) against a `tf.data` pipeline of the graph's `zoo.audio.load_waveform` (decode_wav), on the
FSDD mirror: time per pass and the largest difference between the two.

    ZOO_DATA_DIR=... python bench/audio_decode.py [--rate 8000] [--repeat 3]
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from zoo.audio import load_waveform
from zoo.data import resolve_data_dir
from zoo.data.audio import decode_audio_files, list_fsdd


def graph_decode(files, rate, samples):
    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    ds = ds.map(lambda f: load_waveform(tf.io.read_file(f), sample_rate=rate, num_samples=samples),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(256)
    return np.concatenate(list(ds.as_numpy_iterator()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files, _ = list_fsdd(resolve_data_dir() / "fsdd" / "recordings")
    for i in range(args.repeat):
        t = time.perf_counter()
        graph = graph_decode(files, args.rate, args.rate)
        t_graph = time.perf_counter() - t
        t = time.perf_counter()
        ours, _ = decode_audio_files(files, sample_rate=args.rate, num_samples=args.rate)
        t_ours = time.perf_counter() - t
        print(f"pass {i + 1}: {len(files)} clips, tf.data decode_wav {t_graph:.2f} s, soundfile {t_ours:.2f} s, "
              f"max difference {np.abs(graph - ours).max():.2g}")


if __name__ == "__main__":
    main()
