"""Transfer curves: the generic commands from scratch vs `--init-from ENTRY`, at a few examples per
class, several seeds; test accuracy (mean and spread) and the wall time of each run.

    python bench/transfer.py run keywords cifar5 stars digits cifar5_64 cifar5_64_default   # resumable
    python bench/transfer.py report                                      # bench/results/transfer.{md,png}

Studies (data written under --work from the mirror in $ZOO_DATA_DIR; nothing of it is kept):
- keywords: six words of the mirror's Speech Commands `_unknown_` folder (file names say which:
  eight, six, one, nine, zero, five), split by speaker (a third of the speakers held out for
  testing); the entry speech_commands (it heard these clips as `_unknown_`, never by word).
- digits: Free Spoken Digits (8 kHz, 6 speakers, resampled to the entry's 16 kHz), its official
  test split; the entry speech_commands.
- cifar5: five CIFAR-10 classes (cat, deer, dog, frog, horse) drawn from the CIFAR-10 *test* split
  (the entry cifar10 never saw these images): a pool of 200 a class to draw the training examples
  from, 400 others a class to test on; the entry cifar10.
- cifar5_64: the same images at 64x64 (resized as zoo.images.resize_to does), `--image-size 64`;
  cifar5_64_default: those 64x64 images fine-tuned without `--image-size` (the entry's 32x32).
- stars: IMDB *test* reviews (the entry imdb_sentiment never saw them) labelled by their star
  rating (the file names say it): 1-2, 3-4, 7-8, 9-10 stars, a new 4-class head; 400 a class to
  test on; the entry imdb_sentiment.

Each run is `python -m tasks.<kind>.classify --data DIR [--init-from ENTRY]` with the task's
default preset and the same flags for both arms (`ARMS`), in this process, one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
COMMON = ["--verbose", "0", "--no-tensorboard", "--no-export", "--validation-split", "0"]

STUDIES = {
    "keywords": dict(task="speech.classify", entry="speech_commands", sizes=(5, 15), seeds=(0, 1, 2), flags=[]),
    "digits": dict(task="speech.classify", entry="speech_commands", sizes=(5, 20, 100), seeds=(0, 1, 2), flags=[]),
    "cifar5": dict(task="vision.classify", entry="cifar10", sizes=(5, 20, 100), seeds=(0, 1, 2), flags=[]),
    "cifar5_64": dict(task="vision.classify", entry="cifar10", sizes=(5, 20), seeds=(0, 1, 2),
                      flags=["--image-size", "64"]),
    "stars": dict(task="text.classify", entry="imdb_sentiment", sizes=(5, 20, 100), seeds=(0, 1, 2), flags=[]),
    # The 64x64 images again, at the size --init-from picks without --image-size: the entry's 32x32.
    "cifar5_64_default": dict(task="vision.classify", entry="cifar10", sizes=(5, 20), seeds=(0, 1, 2), flags=[],
                              data="cifar5_64", arms=("entry",)),
}
# scratch: the task's default preset; entry: the same and --init-from (head replaced, nothing frozen).
ARMS = {"scratch": [], "entry": ["--init-from", "{entry}"]}
KEYWORDS = ("eight", "six", "one", "nine", "zero", "five")
CIFAR5 = ("cat", "deer", "dog", "frog", "horse")
STARS = {"1-2 stars": (1, 2), "3-4 stars": (3, 4), "7-8 stars": (7, 8), "9-10 stars": (9, 10)}


# --- the studies' data --------------------------------------------------------------------------


def write_pool(out: Path, pool: dict, test: dict, copy) -> None:
    """`out/pool/<class>/` (what training examples are drawn from) and `out/test/<class>/`."""
    for split, items in (("pool", pool), ("test", test)):
        for label, sources in items.items():
            (out / split / label).mkdir(parents=True, exist_ok=True)
            for i, src in enumerate(sources):
                copy(src, out / split / label, i)
    (out / "done").write_text("")


def keywords(data_dir: Path, out: Path):
    folder = data_dir / "speech_commands" / "_unknown_"
    clips = {w: sorted(folder.glob(f"{w}_*.wav")) for w in KEYWORDS}
    speakers = sorted({p.name.split("_")[1] for files in clips.values() for p in files})
    held = set(np.random.default_rng(0).permutation(speakers)[: len(speakers) // 3])
    pool = {w: [p for p in files if p.name.split("_")[1] not in held] for w, files in clips.items()}
    test = {w: [p for p in files if p.name.split("_")[1] in held] for w, files in clips.items()}
    write_pool(out, pool, test, lambda src, d, i: shutil.copyfile(src, d / src.name))


def digits(data_dir: Path, out: Path):
    files = sorted((data_dir / "fsdd" / "recordings").glob("*.wav"))
    parts = [(p, *p.stem.split("_")) for p in files]  # digit, speaker, index
    pool = {d: [p for p, dd, _, i in parts if dd == d and int(i) >= 5] for d in sorted({x[1] for x in parts})}
    test = {d: [p for p, dd, _, i in parts if dd == d and int(i) < 5] for d in pool}
    write_pool(out, pool, test, lambda src, d, i: shutil.copyfile(src, d / src.name))


def cifar5(data_dir: Path, out: Path, size=None):
    import tensorflow as tf

    from zoo.data.images import load_cifar10
    from zoo.images import resize_to

    data = load_cifar10(str(data_dir))
    images = {c: data.x_test[data.y_test == data.class_names.index(c)] for c in CIFAR5}
    if size:
        images = {c: resize_to(x, (size, size)).numpy() for c, x in images.items()}
    pool = {c: list(x[:200]) for c, x in images.items()}
    test = {c: list(x[200:600]) for c, x in images.items()}
    write_pool(out, pool, test, lambda img, d, i: tf.io.write_file(str(d / f"{i:04d}.png"), tf.io.encode_png(img)))


def stars(data_dir: Path, out: Path):
    files = sorted((data_dir / "aclImdb" / "test").glob("*/*.txt"), key=lambda p: (int(p.stem.split("_")[0]), p.parent.name))
    by_class = {c: [p for p in files if int(p.stem.split("_")[1]) in r] for c, r in STARS.items()}
    order = {c: np.random.default_rng(0).permutation(len(v)) for c, v in by_class.items()}
    pool = {c: [by_class[c][i] for i in order[c][:200]] for c in STARS}
    test = {c: [by_class[c][i] for i in order[c][200:600]] for c in STARS}
    write_pool(out, pool, test, lambda src, d, i: shutil.copyfile(src, d / f"{src.parent.name}_{src.name}"))


WRITERS = {"keywords": keywords, "digits": digits, "cifar5": cifar5, "cifar5_64": lambda d, o: cifar5(d, o, 64),
           "stars": stars}


def training_set(study_dir: Path, k: int, seed: int) -> Path:
    """`study_dir/k<k>-s<seed>/`: `train/<class>/` with k examples a class drawn from the pool
    (all of a class's pool where it has fewer) and `test/` linked to the study's test set."""
    out = study_dir / f"k{k}-s{seed}"
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for cls in sorted(p for p in (study_dir / "pool").iterdir() if p.is_dir()):
        files = sorted(cls.iterdir())
        (out / "train" / cls.name).mkdir(parents=True)
        for i in sorted(rng.permutation(len(files))[:k]):
            os.symlink(files[i], out / "train" / cls.name / files[i].name)
    os.symlink(study_dir / "test", out / "test")
    (out / "done").write_text("")
    return out


# --- running --------------------------------------------------------------------------------


def run_one(study: str, arm: str, k: int, seed: int, work: Path) -> dict:
    import importlib

    import keras

    from zoo.export_lite import cpu_model

    spec = STUDIES[study]
    data = training_set(work / spec.get("data", study), k, seed)
    flags = [f.format(entry=spec["entry"]) for f in ARMS[arm]]
    argv = ["--data", str(data), "--seed", str(seed), "--output-dir", str(work / "runs" / f"{study}-{arm}-k{k}-s{seed}"),
            *COMMON, *spec["flags"], *flags]
    module = importlib.import_module(f"tasks.{spec['task']}")
    keras.backend.clear_session()
    start = time.time()
    metrics = module.main(argv)
    wall = time.time() - start
    counts = {c.name: len(list(c.iterdir())) for c in (data / "train").iterdir()}
    return {"study": study, "arm": arm, "k": k, "seed": seed, "test_accuracy": metrics["test_accuracy"],
            "test_examples": metrics["test_examples"], "train_examples": sum(counts.values()),
            "train_time_s": metrics["train_time_s"], "wall_s": round(wall, 1),
            "command": f"python -m tasks.{spec['task']} " + " ".join(argv), "cpu": cpu_model()}


def run(studies, work: Path, results: Path, data_dir: Path, sizes=None, seeds=None):
    done = {(r["study"], r["arm"], r["k"], r["seed"]) for r in read(results)}
    for study in {STUDIES[s].get("data", s) for s in studies}:
        if not (work / study / "done").exists():
            print(f"Writing the {study} data under {work / study} ...", flush=True)
            WRITERS[study](data_dir, work / study)
    # Smallest sizes first in every study: those are the target's.
    spec_sizes = sorted({k for s in studies for k in STUDIES[s]["sizes"]})
    for k in spec_sizes if sizes is None else sizes:
        for seed in (0, 1, 2) if seeds is None else seeds:
            for study in studies:
                if k not in STUDIES[study]["sizes"] or seed not in STUDIES[study]["seeds"]:
                    continue
                for arm in STUDIES[study].get("arms", ARMS):
                    if (study, arm, k, seed) in done:
                        continue
                    row = run_one(study, arm, k, seed, work)
                    print(json.dumps(row), flush=True)
                    with open(results, "a") as f:
                        f.write(json.dumps(row) + "\n")


def read(results: Path) -> list:
    return [json.loads(line) for line in results.read_text().splitlines() if line.strip()] if results.exists() else []


# --- report --------------------------------------------------------------------------------


def report(results: Path, out: Path):
    rows = read(results)
    table = {}
    for r in rows:
        table.setdefault((r["study"], r["k"]), {}).setdefault(r["arm"], []).append(r)
    lines = ["| study | examples a class | from scratch | from the entry | difference | wall s a run (scratch / entry) |",
             "|---|---:|---:|---:|---:|---:|"]
    for study in STUDIES:
        for k in STUDIES[study]["sizes"]:
            arms = table.get((study, k), {})
            if not arms:
                continue

            def cell(arm):
                acc = [r["test_accuracy"] for r in arms.get(arm, [])]
                return (f"{100 * np.mean(acc):.1f}% ({100 * min(acc):.1f}-{100 * max(acc):.1f}, n={len(acc)})"
                        if acc else "-")

            diff = "-"
            if arms.get("scratch") and arms.get("entry"):
                pairs = {r["seed"]: r["test_accuracy"] for r in arms["scratch"]}
                d = [r["test_accuracy"] - pairs[r["seed"]] for r in arms["entry"] if r["seed"] in pairs]
                diff = f"{100 * np.mean(d):+.1f} points ({100 * min(d):+.1f} to {100 * max(d):+.1f})" if d else "-"
            walls = " / ".join(f"{np.mean([r['wall_s'] for r in arms[a]]):.0f}" if arms.get(a) else "-"
                               for a in ("scratch", "entry"))
            n_train = sorted({r["train_examples"] for a in arms.values() for r in a})
            lines.append(f"| {study} ({STUDIES[study]['entry']}) | {k} ({'/'.join(map(str, n_train))} in all) | "
                         f"{cell('scratch')} | {cell('entry')} | {diff} | {walls} |")
    cpus = sorted({r["cpu"].split(",")[0] for r in rows})
    text = ("# Transfer curves\n\nTest accuracy, mean (min-max, n seeds) of `python bench/transfer.py run ...`; "
            "each run's command is in transfer.jsonl. CPU: " + ", ".join(cpus) + ", 2 cores (wall times include "
            "data loading and evaluation; the cores were shared with other jobs at times).\n\n" + "\n".join(lines) + "\n")
    (out / "transfer.md").write_text(text)
    print(text)
    plot(table, out / "transfer.png")


def plot(table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    studies = [s for s in STUDIES if any(k[0] == s for k in table)]
    fig, axes = plt.subplots(1, len(studies), figsize=(3.6 * len(studies), 3.2), squeeze=False)
    for ax, study in zip(axes[0], studies):
        for arm, colour in (("scratch", "tab:gray"), ("entry", "tab:blue")):
            ks = [k for k in STUDIES[study]["sizes"] if table.get((study, k), {}).get(arm)]
            acc = [[100 * r["test_accuracy"] for r in table[(study, k)][arm]] for k in ks]
            if not ks:
                continue
            mean = [np.mean(a) for a in acc]
            ax.errorbar(ks, mean, yerr=[[m - min(a) for m, a in zip(mean, acc)], [max(a) - m for m, a in zip(mean, acc)]],
                        marker="o", capsize=3, color=colour,
                        label="from scratch" if arm == "scratch" else f"from {STUDIES[study]['entry']}")
        classes = {"keywords": len(KEYWORDS), "digits": 10, "stars": len(STARS)}.get(study, len(CIFAR5))
        ax.axhline(100 / classes, color="tab:red", linestyle=":", linewidth=1, label="chance")
        ax.set_xscale("log")
        ax.set_xticks(STUDIES[study]["sizes"], [str(k) for k in STUDIES[study]["sizes"]])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(study)
        ax.set_xlabel("training examples a class")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the studies (resumable)")
    r.add_argument("studies", nargs="+", choices=sorted(STUDIES))
    r.add_argument("--work", default="/tmp/zoo-transfer", help="where the data and runs are written")
    r.add_argument("--data-dir", default=os.environ.get("ZOO_DATA_DIR"), help="the mirror (default $ZOO_DATA_DIR)")
    r.add_argument("--sizes", type=int, nargs="*", help="only these examples-a-class sizes")
    r.add_argument("--seeds", type=int, nargs="*", help="only these seeds")
    sub.add_parser("report", help="write bench/results/transfer.md and transfer.png from transfer.jsonl")
    args = parser.parse_args(argv)
    results = RESULTS / "transfer.jsonl"
    if args.command == "run":
        if not args.data_dir:
            parser.error("the mirror: pass --data-dir or set ZOO_DATA_DIR")
        work = Path(args.work)
        (work / "runs").mkdir(parents=True, exist_ok=True)
        run(args.studies, work, results, Path(args.data_dir), args.sizes, args.seeds)
    else:
        report(results, RESULTS)


if __name__ == "__main__":
    main()
