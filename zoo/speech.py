"""What the speech tasks share once their data is loaded: waveform pipelines, the model,
training, evaluation (metrics, confusion matrix, spectrogram PNGs) and the waveform/WAV export.

A task parses its config, sets up the run, loads its corpus into `zoo.data.audio.AudioData` and
hands over to `train_speech_classifier` (see tasks/speech/commands.py and digits.py). The
tuner's hooks (tuning/search.py) reuse the same pipelines and model: `speech_search_space`,
`speech_train_size` and `build_speech_trial`.
"""

from __future__ import annotations


import numpy as np

from zoo.data import subset_indices
from zoo.errors import ZooError
from zoo.registry import list_models


def check_speech_config(cfg) -> None:
    """A `ZooError` unless `cfg.model` is a speech model and `cfg.model_kwargs` leave the
    arguments the task sets (from the data, --sample-rate and --clip-seconds) alone."""
    if cfg.model not in list_models("speech"):
        raise ZooError(f"Unknown speech model {cfg.model!r}. Known: {', '.join(list_models('speech'))}.")
    reserved = sorted({"num_classes", "sample_rate", "num_samples"} & set(cfg.model_kwargs))
    if reserved:
        raise ZooError(f"--model-arg {', '.join(reserved)}: set by the task (use --sample-rate and --clip-seconds).")


def speech_datasets(cfg, data):
    """Training (shuffled, time-shifted, noise-mixed), validation (None if empty) and test pipelines."""
    from zoo.pipeline import audio_dataset

    train, val, test = data.train, data.validation, data.test
    if cfg.subset:
        keep = subset_indices(train.labels, cfg.subset, cfg.seed)
        train = type(train)(train.waveforms[keep], train.labels[keep], tuple(train.files[i] for i in keep))
    common = dict(batch_size=cfg.batch_size, seed=cfg.seed, deterministic=cfg.deterministic)
    train_ds = audio_dataset(train.waveforms, train.labels, training=True,
                             time_shift=int(round(cfg.time_shift_ms * data.sample_rate / 1000)), noise=data.noise(),
                             noise_prob=cfg.noise_prob, noise_volume=cfg.noise_volume, **common)
    val_ds = audio_dataset(val.waveforms, val.labels, training=False, **common) if len(val) else None
    test_ds = audio_dataset(test.waveforms, test.labels, training=False, **common)
    return train_ds, val_ds, test_ds, len(train)


def speech_model(cfg, run, data, n_train: int):
    """The model of `cfg` for `data`'s labels, rate and clip length, compiled."""
    from zoo.registry import build_model
    from zoo.train import compile_classifier

    with run.strategy.scope():
        model = build_model(cfg.model, num_classes=len(data.class_names), sample_rate=data.sample_rate,
                            num_samples=data.num_samples, **cfg.model_kwargs)
        compile_classifier(model, cfg, run, steps_per_epoch=int(np.ceil(n_train / cfg.batch_size)))
    return model


def train_speech_classifier(cfg, run, data, *, task: str, corpus: str) -> dict:
    """Builds, trains, evaluates and exports a speech model on `data`; returns the metrics.

    Writes into `run.run_dir`: history.csv, metrics.json, learning_curves.png,
    confusion_matrix.png, spectrograms.png (one test clip per label, as the model sees it),
    spectrograms_augmented.png (training clips after augmentation), model.weights.h5 and
    saved_model/ with metadata.json.

    Args:
        cfg: a `zoo.config.SpeechConfig`.
        run: what `zoo.train.setup_run` returned.
        data: the corpus at `cfg.sample_rate`, `cfg.num_samples` long.
        task: the task's name (`speech.commands`), recorded in the outputs.
        corpus: the corpus' name for messages and plot titles.
    """
    from zoo.audio import serving_endpoints, serving_metadata
    from zoo.evaluate import evaluate_classifier, write_classification_report
    from zoo.export import export_saved_model
    from zoo.models.speech import spectrogram_examples
    from zoo.plots import plot_spectrograms
    from zoo.train import export_metadata, finish_run, train

    # Data
    train_ds, val_ds, test_ds, n_train = speech_datasets(cfg, data)
    print(f"Data: {data.source}; {n_train} train, {len(data.validation)} validation, {len(data.test)} test clips, "
          f"{len(data.class_names)} labels, {data.sample_rate} Hz, {data.num_samples} samples a clip.")

    # Model
    model = speech_model(cfg, run, data, n_train)

    # Train
    history, metrics = train(model, train_ds, val_ds, cfg, run, task=task, dataset=data.source)

    # Evaluate
    split_metrics, matrices = evaluate_classifier(
        model, {"val": (val_ds, data.validation.labels), "test": (test_ds, data.test.labels)}, data.class_names)
    metrics.update(split_metrics)
    print(f"Test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f} "
          f"({corpus} from {data.source}, {len(data.test)} clips).")
    if run.chief:
        write_classification_report(run.run_dir, metrics, history, matrices["test"], data.class_names,
                                    title=f"{corpus} test, accuracy {metrics['test_accuracy']:.2%}")
        specs, titles, frame_seconds = spectrogram_examples(model, data.test.waveforms, data.test.labels,
                                                            data.class_names)
        plot_spectrograms(specs, titles, run.run_dir / "spectrograms.png", frame_seconds=frame_seconds,
                          title=f"{corpus}: normalized log-mel spectrograms, one test clip per label")
        x, y = next(iter(train_ds))
        specs, titles, _ = spectrogram_examples(model, x.numpy(), y.numpy(), data.class_names, training=True)
        plot_spectrograms(specs, titles, run.run_dir / "spectrograms_augmented.png", frame_seconds=frame_seconds,
                          title=f"{corpus}: training clips after augmentation (masks: SpecAugment)")

    # Export
    if cfg.export and run.chief:
        path = export_saved_model(
            model, run.run_dir / "saved_model",
            **serving_endpoints(model, sample_rate=data.sample_rate, num_samples=data.num_samples),
            weights_dtype=cfg.export_weights,
            metadata=export_metadata(
                run, metrics, task=task, labels=list(data.class_names),
                **serving_metadata(sample_rate=data.sample_rate, num_samples=data.num_samples,
                                   num_classes=len(data.class_names)),
                dataset=data.source, model=cfg.model, model_kwargs=cfg.model_kwargs,
                preprocessing={"time_shift_ms": cfg.time_shift_ms, "noise_prob": cfg.noise_prob,
                               "noise_volume": cfg.noise_volume, "note": "training only; the spectrogram is in the model"}))
        print(f"SavedModel: {path}")
    return finish_run(run, metrics)


# --- tuning ----------------------------------------------------------------------------------


def speech_search_space(hp, *, default_model, noise=True) -> dict:
    """The speech tasks' search space, as config overrides: the model and its size, dropout,
    SpecAugment time masks, learning rate, weight decay, label smoothing, batch size, time shifts
    and, with `noise`, background-noise mixing."""
    model = hp.Choice("model", ["ds_cnn", "crnn", "speech_cnn"], default=default_model)
    with hp.conditional_scope("model", ["ds_cnn"]):
        filters, blocks = hp.Int("filters", 64, 192, step=32, default=128), hp.Int("blocks", 3, 5, default=4)
    with hp.conditional_scope("model", ["crnn"]):
        units = hp.Choice("rnn_units", [64, 96, 128], default=96)
    with hp.conditional_scope("model", ["speech_cnn"]):
        width = hp.Choice("width", [16, 32, 48], default=32)
    if model == "ds_cnn":
        model_kwargs = {"filters": filters, "blocks": blocks}
    elif model == "crnn":
        model_kwargs = {"rnn_units": (units, units)}
    else:
        model_kwargs = {"widths": (width, 2 * width, 4 * width)}
    model_kwargs.update(dropout=hp.Float("dropout", 0.0, 0.4, step=0.1, default=0.2),
                        time_masks=hp.Int("time_masks", 0, 3, default=2))
    out = dict(model=model, model_kwargs=model_kwargs,
               learning_rate=hp.Float("learning_rate", 5e-4, 1e-2, sampling="log", default=3e-3),
               weight_decay=hp.Float("weight_decay", 1e-3, 1e-1, sampling="log", default=1e-2),
               label_smoothing=hp.Float("label_smoothing", 0.0, 0.2, step=0.1, default=0.1),
               batch_size=hp.Choice("batch_size", [32, 64, 128], default=64),
               time_shift_ms=hp.Choice("time_shift_ms", [0.0, 50.0, 100.0, 150.0], default=100.0))
    if noise:
        out["noise_prob"] = hp.Float("noise_prob", 0.0, 0.8, step=0.2, default=0.8)
    return out


def speech_train_size(cfg, data) -> int:
    return len(data.train)


def build_speech_trial(cfg, run, data):
    """One tuner trial: the training and validation pipelines and the compiled model."""
    from zoo.train import Experiment

    train_ds, val_ds, _, n_train = speech_datasets(cfg, data)
    return Experiment(speech_model(cfg, run, data, n_train), train_ds, val_ds)
