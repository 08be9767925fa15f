"""Audio classification on your own clips.

Trains a keyword-spotting style classifier on any folder of label folders (`clips/<label>/*.wav`:
any sample rate, bit depth, channel count and length; FLAC and OGG too; with or without `train/`
and `test/`), a registered dataset or `tfds:NAME`; evaluates it on the test split and exports a
SavedModel that takes waveforms at the model's rate (`serve`) or WAV file bytes at any rate
(`serve_wav`) and returns label probabilities and the label.

    python -m tasks.speech.classify --data clips/                       # 16 kHz, length from the data
    python -m tasks.speech.classify --data clips/ --sample-rate 8000 --clip-seconds 2
    python -m tasks.speech.classify --data fsdd --sample-rate 8000      # the same data as tasks.speech.digits
    python -m tasks.speech.classify --data tfds:spoken_digit            # online
    python -m tasks.speech.classify --data my_words/ --init-from speech_commands   # fine-tune: a new head

Every clip is mixed down to mono, resampled to `--sample-rate` and padded or trimmed (centred) to
`--clip-seconds`; without it, the clip length is the 95th percentile of the clips' durations (at
most 10 s), so that few clips are cut. Clips are split by speaker when their names say it
(`<speaker>_nohash_<n>.wav`, the Speech Commands convention), else stratified by label with
`--seed`; `train/` and `test/` folders are kept as they are. A `_silence_` label, if there is one,
is also mixed into training clips as background noise. The model computes its log-mel spectrogram
from the waveform. Killing a run and starting the same command again resumes it. With
`--init-from ENTRY` the run starts from a pretrained entry: its architecture, weights, sample rate
and clip length.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.speech.commands import PRESETS as COMMANDS_PRESETS
from zoo.recipes.audio import AUDIO, AudioConfig

TASK = "speech.classify"
RECIPE = AUDIO


@dataclass
class Config(AudioConfig):
    pass


PRESETS = {
    # DS-CNN at 128 channels, four blocks (81k parameters), 40 ms windows every 20 ms, AdamW with a
    # cosine schedule and label smoothing: the Speech Commands `small` recipe, 92.6% on its test split.
    # BatchNorm momentum 0.9: a few dozen clips train a step or two an epoch, and with Keras' 0.99
    # the moving statistics had not settled after 40 epochs (every test clip given one label).
    "default": dict(COMMANDS_PRESETS["small"], epochs=40,
                    model_kwargs={**COMMANDS_PRESETS["small"]["model_kwargs"], "bn_momentum": 0.9}),
    # A larger DS-CNN (172 channels, five blocks: 172k parameters), 60 epochs.
    "large": dict(COMMANDS_PRESETS["default"]),
    # Convolutions, then a GRU over the pooled frames.
    "crnn": dict(COMMANDS_PRESETS["crnn"]),
}


def main(argv=None) -> dict:
    """Trains, evaluates and exports; returns the metrics written to `metrics.json`."""
    return AUDIO.main(argv, Config, PRESETS, task=TASK, doc=__doc__)


# Tuning: `python -m tuning.search speech.classify --data clips/` (hooks: tuning/search.py).
load_data, train_size, build_trial, search_space = AUDIO.tuning_hooks()


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
