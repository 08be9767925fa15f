"""What a search leaves: the trials table (results.csv, results.md), best.json, and plots of the
score per trial and of the most important hyperparameters against the score."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def collect(oracle, directory) -> list:
    """One row per trial, in trial order: id, status, score, epochs trained, wall time, the
    worker that ran it, the trial it continued (Hyperband) and its hyperparameters."""
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        record = _read_json(Path(directory) / f"trial_{trial_id}" / "tuning.json")
        history = record.get("history") or []
        rows.append({
            "trial_id": trial_id, "status": trial.status, "score": trial.score,
            "epochs": history[-1]["epoch"] + 1 if history else None, "wall_time_s": record.get("wall_time_s"),
            "tuner_id": record.get("tuner_id"), "continues": record.get("continues"),
            # The trial of the configuration as given ran none of its drawn values: it shows none.
            "hyperparameters": {} if trial.hyperparameters.values.get("as_given") else
            {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")},
            "as_given": bool(trial.hyperparameters.values.get("as_given")),
        })
    return rows


def trials_run_by(directory, tuner_id) -> list:
    return sorted(p.parent.name.removeprefix("trial_") for p in Path(directory).glob("trial_*/tuning.json")
                  if _read_json(p).get("tuner_id") == tuner_id)


def best_trial(oracle):
    """The best completed trial, or None."""
    best = oracle.get_best_trials(1)
    return best[0] if best and best[0].status == "COMPLETED" and _finite(best[0].score) else None


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_table(rows, directory, objective) -> str:
    """Writes results.csv (one column per hyperparameter) and results.md; returns the markdown."""
    directory = Path(directory)
    names = sorted({k for r in rows for k in r["hyperparameters"]})
    columns = ["trial_id", "status", "score", "epochs", "wall_time_s", "tuner_id", "continues"]
    with open(directory / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns + names)
        for r in rows:
            writer.writerow([r[c] for c in columns] + [r["hyperparameters"].get(n, "") for n in names])
    done = [r for r in rows if r["status"] == "COMPLETED" and _finite(r["score"])]
    pick = max if objective.direction == "max" else min
    best = pick(done, key=lambda r: r["score"])["trial_id"] if done else None
    lines = [f"{len(rows)} trials, {len(done)} completed; objective {objective.name} ({objective.direction}), "
             f"best **in bold**.", "",
             f"| trial | {objective.name} | epochs | wall time | worker | status | hyperparameters |",
             "|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        score = f"{r['score']:.4f}" if _finite(r["score"]) else "-"
        score = f"**{score}**" if r["trial_id"] == best else score
        wall = f"{r['wall_time_s']:.0f} s" if _finite(r["wall_time_s"]) else "-"
        hps = ", ".join(f"{k}={_format(v)}" for k, v in sorted(r["hyperparameters"].items()))
        hps = "the configuration as given (preset and flags)" if r.get("as_given") else hps
        lines.append(f"| {r['trial_id']} | {score} | {r['epochs'] or '-'} | {wall} | {r['tuner_id'] or '-'} "
                     f"| {r['status'].lower()} | {hps} |")
    text = "\n".join(lines) + "\n"
    (directory / "results.md").write_text(text)
    return text


def write_best(directory, trial, objective, *, task, overrides, command, search_command, retrain=None) -> dict:
    """Writes best.json: the best trial, its hyperparameters, the config overrides they stand for
    and the task command that trains that configuration in full (with the retrain's metrics
    once `--retrain-best` has run it)."""
    best = {
        "task": task, "objective": {"name": objective.name, "direction": objective.direction},
        "score": trial.score, "trial_id": trial.trial_id,
        "hyperparameters": {} if trial.hyperparameters.values.get("as_given") else
        {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")},
        "as_given": bool(trial.hyperparameters.values.get("as_given")),
        "overrides": json.loads(json.dumps(overrides)), "command": command, "search_command": search_command,
    }
    if retrain is not None:
        best["retrain"] = {k: v for k, v in retrain.items() if not isinstance(v, dict)}
        best["retrain_dir"] = str(Path(directory) / "best")
    (Path(directory) / "best.json").write_text(json.dumps(best, indent=2) + "\n")
    return best


def importance(rows) -> dict:
    """How much of the score's variance each hyperparameter explains among completed trials
    (R^2 of a line through the score for numbers, on a log scale where they span a decade or more;
    the share of variance between groups for choices). Scores are centred per epoch count first,
    so Hyperband's short and long trials compare. Sorted, most important first."""
    done = [r for r in rows if r["status"] == "COMPLETED" and _finite(r["score"])]
    if len(done) < 3:
        return {}
    by_epochs = {}
    for r in done:
        by_epochs.setdefault(r["epochs"], []).append(r["score"])
    centred = [r["score"] - np.mean(by_epochs[r["epochs"]]) for r in done]
    out = {}
    for name in sorted({k for r in done for k in r["hyperparameters"]}):
        pairs = [(r["hyperparameters"][name], y) for r, y in zip(done, centred) if name in r["hyperparameters"]]
        values, y = [v for v, _ in pairs], np.array([s for _, s in pairs])
        if len(pairs) < 3 or len(set(map(str, values))) < 2 or not y.var():
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            x = np.array(values, dtype=float)
            x = np.log(x) if x.min() > 0 and x.max() >= 10 * x.min() else x
            out[name] = float(np.corrcoef(x, y)[0, 1] ** 2)
        else:
            groups = {}
            for v, s in pairs:
                groups.setdefault(str(v), []).append(s)
            between = sum(len(g) * (np.mean(g) - y.mean()) ** 2 for g in groups.values())
            out[name] = float(between / (y.var() * len(y)))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def write_plots(rows, directory, objective, top=4):
    """scores.png (the score of each trial) and hyperparameters.png (the `top` most important
    hyperparameters against the score)."""
    from zoo.plots import plot_scatter_panels, plot_trial_scores

    directory = Path(directory)
    done = [r for r in rows if r["status"] == "COMPLETED" and _finite(r["score"])]
    plot_trial_scores([r["trial_id"] for r in done], [r["score"] for r in done], directory / "scores.png",
                      epochs=[r["epochs"] for r in done], label=objective.name, maximize=objective.direction == "max")
    ranked = list(importance(rows).items())[:top]
    panels = [(f"{name} (R² {share:.2f})", [r["hyperparameters"].get(name) for r in done], [r["score"] for r in done])
              for name, share in ranked]
    plot_scatter_panels(panels, directory / "hyperparameters.png", ylabel=objective.name,
                        title="The most important hyperparameters" if panels else "Too few trials to rank hyperparameters")
