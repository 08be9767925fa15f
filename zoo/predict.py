"""Predictions from a pretrained entry on the command line.

    python -m zoo.predict cifar10 cat.png dog.jpg                 # image files, resized to 32x32
    python -m zoo.predict speech_commands clip.wav                # WAV files, any rate
    python -m zoo.predict imdb_sentiment "what a film"            # texts
    python -m zoo.predict translate_spa_eng "¿dónde está la estación?"
    python -m zoo.predict cifar10 cat.png --json --top-k 5        # JSON for machines
    python -m zoo.predict --list                                  # the entries
    python -m zoo.predict speech_commands_int8 clip.wav           # an int8 .tflite entry, on the LiteRT interpreter

NAME is an entry of `saved_models/` (or `ZOO_MODELS_DIR`) or the path of one. Classifiers print
the `--top-k` most probable labels of each input. A missing file, a file that is not an image or
not a WAV, or an empty string is a one-line error with exit code 2.
"""

from __future__ import annotations

import argparse

from zoo.cli import dumps_strict


def format_result(source, result) -> str:
    if "translation" in result:
        return f"{source} -> {result['translation']}"
    if "top_k" in result:
        return f"{source}: " + " | ".join(f"{r['label']} {r['probability']:.1%}" for r in result["top_k"])
    return f"{source}: {result}"


def main(argv=None) -> list[dict]:
    from zoo.errors import ZooError
    from zoo.pretrained import list_models, load

    parser = argparse.ArgumentParser(prog="python -m zoo.predict", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:8]))
    parser.add_argument("name", nargs="?", metavar="NAME", help="an entry of saved_models/ or its path")
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image or WAV files, or texts, by the entry's kind")
    parser.add_argument("--top-k", type=int, default=3, help="labels shown for each input of a classifier (default: 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--trust", action="store_true",
                        help="load even if the graph uses ops outside the allow-list or there is no manifest")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name in list_models():
            print(name)
        return []
    if not args.name or not args.inputs:
        parser.error("give an entry name and at least one input (or --list)")
    if args.top_k < 1:
        parser.error(f"--top-k must be >= 1. Received: --top-k {args.top_k}")

    predictor = load(args.name, trust=args.trust)
    if predictor.kind == "keras":
        raise ZooError(f"{args.name}: a .keras file takes arrays, not files or texts; use zoo.load(...).predict(arrays).")
    results = predictor.predict(args.inputs, top_k=args.top_k)
    if args.json:
        # Strict JSON: a probability that is NaN (a diverged model) is null, not the `NaN` no parser reads.
        print(dumps_strict({"model": predictor.name, "task": predictor.metadata.get("task"), "kind": predictor.kind,
                            "results": [{"input": x, **r} for x, r in zip(args.inputs, results)]},
                           indent=2, ensure_ascii=False))
    else:
        for x, r in zip(args.inputs, results):
            print(format_result(x, r))
    return results


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
