"""Speech Commands and FSDD from the mirror in ZOO_DATA_DIR (skipped without it): counts per
label, the speaker-disjoint and official splits, decoding, resampling and the log-mel front end
against librosa on real clips, and one short training run that beats chance."""

import time
from pathlib import Path

import keras
import librosa
import numpy as np
import pytest

from tasks.speech import digits
from zoo.audio import fix_length, resample
from zoo.data.audio import (
    SPEECH_COMMANDS_LABELS, decode_wav_files, fsdd_split, list_audio_folder, list_fsdd, speaker_of, split_by_speaker,
)
from zoo.models.speech import LogMelSpectrogram, frontend_settings

pytestmark = pytest.mark.real_data

# The mirror's Speech Commands: the v0.02 test release (see ../shared/data/README.md).
COMMANDS_COUNTS = {"_silence_": 347, "_unknown_": 349, "down": 363, "go": 350, "left": 355, "no": 353, "off": 341,
                   "on": 343, "right": 346, "stop": 345, "up": 362, "yes": 373}


@pytest.fixture(scope="module")
def commands(data_dir):
    path = data_dir / "speech_commands"
    if not path.is_dir():
        pytest.skip(f"no speech_commands in {data_dir}")
    return list_audio_folder(path)


@pytest.fixture(scope="module")
def fsdd(data_dir):
    path = data_dir / "fsdd" / "recordings"
    if not path.is_dir():
        pytest.skip(f"no fsdd/recordings in {data_dir}")
    return list_fsdd(path)


def test_speech_commands_counts_per_label(commands):
    files, labels, names = commands
    assert sorted(names) == sorted(SPEECH_COMMANDS_LABELS)
    assert dict(zip(names, np.bincount(labels).tolist())) == COMMANDS_COUNTS
    assert len(files) == 4227
    assert all(speaker_of(f) is None for f in files if f.parent.name == "_silence_")
    assert all(speaker_of(f) for f in files if f.parent.name != "_silence_")


def test_speech_commands_split_shares_no_speaker(commands):
    files, labels, names = commands
    splits = np.asarray(split_by_speaker(files, 0.1, 0.1))
    speakers = {s: {speaker_of(f) for f, k in zip(files, splits) if k == s} - {None}
                for s in ("train", "validation", "test")}
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["validation"] & speakers["test"]
    assert [int(np.sum(splits == s)) for s in ("train", "validation", "test")] == [3448, 345, 434]
    for s in ("train", "validation", "test"):  # every label, noise included, in every split
        assert set(labels[splits == s].tolist()) == set(range(len(names))), s
    assert len(speakers["test"]) > 40  # many speakers, not a few prolific ones


def test_fsdd_counts_and_official_split(fsdd):
    files, labels = fsdd
    assert len(files) == 3000 and np.bincount(labels).tolist() == [300] * 10
    speakers = [f.name.split("_")[1] for f in files]
    assert sorted(set(speakers)) == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert all(speakers.count(s) == 500 for s in set(speakers))
    splits = np.asarray(fsdd_split(files, 0.1))
    # Index 0-4 of each speaker's 50 takes of each digit: 6 x 10 x 5 = 300, not 500.
    assert int(np.sum(splits == "test")) == 300 and int(np.sum(splits != "test")) == 2700
    assert np.bincount(labels[splits == "test"]).tolist() == [30] * 10
    assert [int(np.sum(splits == s)) for s in ("train", "validation")] == [2407, 293]


@pytest.fixture(scope="module")
def real_clips(commands, fsdd):
    """Eight clips of each corpus, decoded by the zoo at their own rate, 1 s long."""
    sc = [f for f in commands[0][::530]][:8]
    fd = [f for f in fsdd[0][::375]][:8]
    return {16000: (sc, decode_wav_files(sc, sample_rate=16000, num_samples=16000)),
            8000: (fd, decode_wav_files(fd, sample_rate=8000, num_samples=8000))}


def test_real_clips_decode_as_librosa_reads_them(real_clips):
    for rate, (files, ours) in real_clips.items():
        for f, x in zip(files, ours):
            theirs, sr = librosa.load(f, sr=None)
            assert sr == rate
            np.testing.assert_array_equal(x, fix_length(theirs, rate).numpy(), err_msg=str(f))


def test_log_mel_matches_librosa_on_real_clips(real_clips):
    for rate, (files, waveforms) in real_clips.items():
        fft, frame, step = frontend_settings(rate, 30.0, 10.0)
        layer = LogMelSpectrogram(sample_rate=rate, fft_length=fft, frame_length=frame, frame_step=step, num_mel_bins=40)
        ours = keras.ops.convert_to_numpy(layer(waveforms))
        for f, x, y in zip(files, waveforms, ours):
            power = librosa.feature.melspectrogram(y=x, sr=rate, n_fft=fft, win_length=frame, hop_length=step,
                                                   n_mels=40, fmin=20.0)
            expected = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80.0).T
            np.testing.assert_allclose(y, expected, atol=0.01, err_msg=str(f))  # dB, as in test_audio.py


def test_resampling_matches_librosa_on_real_clips(fsdd):
    for f in fsdd[0][::600]:
        x, _ = librosa.load(f, sr=None)
        ours = resample(x, 8000, 16000).numpy()
        theirs = librosa.resample(x, orig_sr=8000, target_sr=16000)  # soxr_hq
        assert len(ours) == len(theirs) == 2 * len(x)
        err = (ours - theirs)[100:-100]
        # Two different near-ideal low-pass filters: they differ only close to 4 kHz.
        assert np.sqrt(np.mean(err**2)) < 0.02 * np.sqrt(np.mean(theirs**2)), f


@pytest.mark.slow
def test_a_short_training_run_beats_chance(data_dir, tmp_path):
    if not (Path(data_dir) / "fsdd" / "recordings").is_dir():
        pytest.skip(f"no fsdd/recordings in {data_dir}")
    start = time.time()
    # A small CRNN, 3 epochs of FSDD's 2,407 training clips: about 35 s on two CPU cores.
    metrics = digits.main([
        "--model", "crnn", "--model-arg", "conv_filters=(16, 32)", "--model-arg", "rnn_units=(32,)",
        "--epochs", "3", "--batch-size", "32", "--warmup-epochs", "0", "--precision", "float32",
        "--no-tensorboard", "--no-export", "--verbose", "0",
        "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "run"),
    ])
    elapsed = time.time() - start
    assert metrics["test_examples"] == 300 and metrics["val_examples"] == 293
    assert metrics["test_accuracy"] > 0.4, metrics  # chance is 0.1; this run gave 0.71
    assert elapsed < 90, f"{elapsed:.0f} s"
