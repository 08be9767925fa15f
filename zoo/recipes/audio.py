"""The audio classification recipe: mono float32 waveforms at one rate and length in memory
(resampled, downmixed and padded or trimmed when loaded), augmented in tf.data (time shifts,
background noise from a `_silence_` class), a model that computes its log-mel spectrogram (and
SpecAugment) from the waveform, and a SavedModel that takes waveforms (`serve`) or WAV file bytes
at any rate (`serve_wav`) and returns label probabilities.

Datasets: any registered audio dataset, a folder of label folders (`<label>/*.wav`, any rate,
width, channel count and length; FLAC and OGG too), or `tfds:NAME`. Tasks: `tasks.speech.classify`
(any data), `tasks.speech.commands` (Speech Commands) and `tasks.speech.digits` (FSDD).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from zoo.config import FineTuneOptions, SpeechConfig, option
from zoo.data import subset_indices
from zoo.recipes import Recipe, register_recipe, short_name


@dataclass
class AudioConfig(FineTuneOptions, SpeechConfig):
    """What the audio recipe takes: the data, the clip format, the model and waveform augmentation."""

    data: typing.Optional[str] = option(None, "the dataset: a registered name (python -m zoo.models), a folder of "
                                              "label folders (<label>/*.wav, with or without train/ and test/), or "
                                              "tfds:NAME")
    clip_seconds: typing.Optional[float] = option(None, "clips are padded or trimmed (centred) to this length "
                                                        "(default: the 95th percentile of the data's durations, "
                                                        "at most 10 s)", gt=0, le=60)


class AudioRecipe(Recipe):
    kind = "audio"
    family = "speech"
    noun = "clips"
    predictor = "audio_classifier"
    reserved = ("num_classes", "sample_rate", "num_samples")
    reserved_hint = " (use --sample-rate and --clip-seconds)"

    def datasets(self, cfg, data):
        from zoo.pipeline import audio_dataset

        train, val, test = data.train, data.validation, data.test
        if cfg.subset:
            train = train.take(subset_indices(train.labels, cfg.subset, cfg.seed))
        common = dict(batch_size=cfg.batch_size, seed=cfg.seed, deterministic=cfg.deterministic)
        out = {"train": audio_dataset(train.x, train.labels, training=True,
                                      time_shift=int(round(cfg.time_shift_ms * data.sample_rate / 1000)),
                                      noise=data.noise(), noise_prob=cfg.noise_prob, noise_volume=cfg.noise_volume,
                                      **common),
               "val": (audio_dataset(val.x, val.labels, training=False, **common), val.labels) if len(val) else None,
               "test": (audio_dataset(test.x, test.labels, training=False, **common), test.labels)}
        return out, len(train)

    def build(self, cfg, data):
        from zoo.registry import build_model

        return build_model(cfg.model, num_classes=len(data.class_names), sample_rate=data.sample_rate,
                           num_samples=data.num_samples, **cfg.model_kwargs)

    def describe(self, cfg, data, n_train):
        return (super().describe(cfg, data, n_train)[:-1]
                + f", {data.sample_rate} Hz, {data.num_samples} samples a clip ({data.num_samples / data.sample_rate:g} s).")

    def report(self, cfg, run, model, data, datasets, probabilities):
        from zoo.models.speech import spectrogram_examples
        from zoo.plots import plot_spectrograms

        name = short_name(data.source)
        specs, titles, frame_seconds = spectrogram_examples(model, data.test.x, data.test.labels, data.class_names)
        plot_spectrograms(specs, titles, run.run_dir / "spectrograms.png", frame_seconds=frame_seconds,
                          title=f"{name}: normalized log-mel spectrograms, one test clip per label")
        x, y = next(iter(datasets["train"]))
        specs, titles, _ = spectrogram_examples(model, x.numpy(), y.numpy(), data.class_names, training=True)
        plot_spectrograms(specs, titles, run.run_dir / "spectrograms_augmented.png", frame_seconds=frame_seconds,
                          title=f"{name}: training clips after augmentation (masks: SpecAugment)")

    def serving(self, cfg, model, classifier, data):
        from zoo.audio import serving_endpoints

        return serving_endpoints(classifier, sample_rate=data.sample_rate, num_samples=data.num_samples,
                                 class_names=list(data.class_names))

    def card(self, cfg, data):
        from zoo.audio import serving_metadata

        meta = serving_metadata(sample_rate=data.sample_rate, num_samples=data.num_samples,
                                num_classes=len(data.class_names), class_names=list(data.class_names))
        meta["preprocessing"] = {
            "sample_rate": data.sample_rate, "num_samples": data.num_samples,
            "clip": "mono (channels averaged), resampled, padded or trimmed (centred) to num_samples",
            "time_shift_ms": cfg.time_shift_ms, "noise_prob": cfg.noise_prob, "noise_volume": cfg.noise_volume,
            "note": "time shifts and noise are training only; the spectrogram is in the model"}
        return meta

    def builder_args(self, card):
        return {"num_classes": len(card["labels"]), "sample_rate": int(card["sample_rate"]),
                "num_samples": int(card["num_samples"])}

    def inherit(self, cfg, parent):
        rate, samples = int(parent.card["sample_rate"]), int(parent.card["num_samples"])
        return {"sample_rate": rate, "clip_seconds": samples / rate}

    def model_inputs(self, card):
        return (f"float32 mono waveforms [N, {card['num_samples']}] at {card['sample_rate']} Hz, in [-1, 1] "
                "(zoo.audio.read_audio and fit_clip prepare files); the spectrogram is computed in the model")

    def search_space(self, hp, *, default_model="ds_cnn", noise=True) -> dict:
        """The search space, as config overrides: the model and its size, dropout, SpecAugment
        time masks, learning rate, weight decay, label smoothing, batch size, time shifts and,
        with `noise`, background-noise mixing."""
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


AUDIO = register_recipe(AudioRecipe())
