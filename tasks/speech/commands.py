"""Keyword spotting on Speech Commands.

Trains a keyword recognizer on Speech Commands v0.02 with the 12-label set (yes no up down left
right on off stop go, `_silence_` and `_unknown_`): 1-second clips at 16 kHz, split 80/10/10 by
speaker so that no speaker is in two splits. The model computes its log-mel spectrogram from the
raw waveform; training mixes in background noise (the `_silence_` clips), shifts clips in time
and applies SpecAugment. Prints the parameter count and the test accuracy, and exports a
SavedModel that takes `float32[None, 16000]` waveforms (`serve`) or WAV file bytes at any rate
(`serve_wav`) and returns label probabilities.

    python -m tasks.speech.commands                     # the `default` preset (DS-CNN)
    python -m tasks.speech.commands --preset small      # under 100k parameters
    python -m tasks.speech.commands --preset crnn       # convolutions, then a GRU
    python -m tasks.speech.commands --model speech_cnn --epochs 40 --model-arg widths=(32,64,128)

Offline, `--data-dir DIR` or `ZOO_DATA_DIR` points at a directory holding
`speech_commands/<label>/*.wav` (or at any Keras audio folder `<label>/*.wav`, split by the
speaker in `<speaker>_nohash_<n>.wav` names); otherwise TFDS downloads `speech_commands` and its
own splits are used. Killing a run and starting the same command again resumes it.

The mirror is the 4,227-clip v0.02 test release: 3,448 train, 345 validation and 434 test clips
after the speaker split. On its 434 test clips, `default` reached 93.09%, `small` 92.63% (the shipped `speech_commands`
entry) and `crnn` 88.7%, each in under an hour on a 2-core CPU; commands in docs/speech.md.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from zoo.config import option
from zoo.recipes.audio import AUDIO, AudioConfig

TASK = "speech.commands"
RECIPE = AUDIO


@dataclass
class Config(AudioConfig):
    data: typing.Optional[str] = option("speech_commands", "the dataset (python -m zoo.models lists them), read from "
                                                "--data-dir, else ZOO_DATA_DIR, else TFDS")
    sample_rate: int = option(16000, "the model's sample rate in Hz; clips at other rates are resampled")
    clip_seconds: typing.Optional[float] = option(1.0, "clips are padded or trimmed (centred) to this length",
                                                  gt=0, le=60)


# Adam with weight decay, a short warm-up and cosine decay, label smoothing; the waveform
# augmentation (SpeechConfig defaults) and SpecAugment (builder defaults) fight overfitting
# of the small training set. The DS-CNNs use Hello Edge's front end (40 ms windows every 20 ms:
# 51 frames), which halves their cost on a CPU against 10 ms hops.
_RECIPE = dict(optimizer="adamw", learning_rate=3e-3, weight_decay=1e-2, schedule="cosine", warmup_epochs=2,
               epochs=60, batch_size=64, label_smoothing=0.1)
_HELLO_EDGE = {"window_ms": 40.0, "hop_ms": 20.0, "time_mask_width": 5}
PRESETS = {
    # DS-CNN at DS-CNN-M's width (Zhang et al., 2017) with five blocks: 172k parameters.
    "default": dict(_RECIPE, model="ds_cnn", model_kwargs={"filters": 172, "blocks": 5, **_HELLO_EDGE}),
    # DS-CNN at 128 channels, four blocks: 81k parameters.
    "small": dict(_RECIPE, model="ds_cnn", model_kwargs={"filters": 128, "blocks": 4, **_HELLO_EDGE}),
    # Two convolutions, then two GRU layers over the 25 pooled frames: 289k parameters.
    "crnn": dict(_RECIPE, model="crnn", model_kwargs={"conv_filters": (32, 64), "rnn_units": (96, 96)},
                 learning_rate=2e-3, clipnorm=5.0),
}


def main(argv=None) -> dict:
    """Trains, evaluates and exports; returns the metrics written to `metrics.json`."""
    return AUDIO.main(argv, Config, PRESETS, task=TASK, doc=__doc__)


# Tuning (`python -m tuning.search speech.commands`; the hooks are described in tuning/search.py).
load_data, train_size, build_trial, _ = AUDIO.tuning_hooks()


def search_space(hp) -> dict:
    return AUDIO.search_space(hp, default_model="ds_cnn", noise=True)


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
