"""The speech tasks end to end on tiny fake corpora (tones): outputs, the exported SavedModel with
waveforms and with WAV bytes in a fresh process, and bad input. The end-to-end runs take seconds
each: they are marked slow."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from tasks.speech import commands, digits
from zoo.audio import load_waveform
from zoo.data.audio import SPEECH_COMMANDS_LABELS, load_speech_commands
from zoo.errors import DataError, ZooError

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = ["--batch-size", "32", "--no-tensorboard", "--verbose", "0", "--precision", "float32", "--jit-compile", "false"]
# The commands task at 8 kHz, 0.25 s: the 16 kHz fake clips are resampled while loading.
COMMANDS_ARGS = [*FAST, "--model", "ds_cnn", "--model-arg", "filters=8", "--model-arg", "blocks=1", "--epochs", "1",
                 "--sample-rate", "8000", "--clip-seconds", "0.25"]
RATE, SAMPLES = 8000, 2000


def tone(freq, rate, seconds, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(round(rate * seconds))) / rate)).astype("float32")


def wav_bytes(x, rate):
    x = np.asarray(x, dtype="float32")
    return tf.audio.encode_wav(x[:, None] if x.ndim == 1 else x, rate).numpy()


def write_fake_commands(root, speakers=20):
    """`root/speech_commands/<label>/<speaker>_nohash_0.wav`: one clip per speaker and word (a tone
    per label, 0.25 s at 16 kHz), and 20 `_silence_/<n>.wav` noise clips."""
    rng = np.random.default_rng(0)
    base = root / "speech_commands"
    for k, label in enumerate(SPEECH_COMMANDS_LABELS):
        (base / label).mkdir(parents=True)
        for i in range(speakers):
            if label == "_silence_":
                x, name = (0.05 * rng.normal(size=4000)).astype("float32"), f"{1000 + i}.wav"
            else:
                x, name = tone(300 + 250 * k, 16000, 0.25) + 0.01 * rng.normal(size=4000).astype("float32"), \
                    f"{i:04x}beef_nohash_0.wav"
            (base / label / name).write_bytes(wav_bytes(x, 16000))
    return root


def write_fake_fsdd(root):
    """`root/fsdd/recordings/<digit>_<speaker>_<index>.wav`, 2 speakers x 6 takes, 8 kHz, 0.2-0.4 s."""
    folder = root / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    for d in range(10):
        for speaker in ("alice", "bob"):
            for i in range(6):
                x = tone(300 + 200 * d, 8000, 0.2 + 0.04 * i)
                (folder / f"{d}_{speaker}_{i}.wav").write_bytes(wav_bytes(x, 8000))
    return root


def run_main(main, argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        metrics = main(argv)
    keras.mixed_precision.set_dtype_policy("float32")
    return metrics, out.getvalue()


@pytest.fixture(scope="module")
def commands_dir(tmp_path_factory):
    return write_fake_commands(tmp_path_factory.mktemp("commands"))


@pytest.fixture(scope="module")
def commands_run(commands_dir, tmp_path_factory):
    """One finished 1-epoch run of a tiny DS-CNN on the fake Speech Commands (about 10 s)."""
    run_dir = tmp_path_factory.mktemp("commands_run") / "run"
    metrics, stdout = run_main(commands.main, [*COMMANDS_ARGS, "--data-dir", str(commands_dir), "--output-dir", str(run_dir)])
    return SimpleNamespace(metrics=metrics, stdout=stdout, run_dir=run_dir)


@pytest.fixture(scope="module")
def commands_data(commands_dir):
    return load_speech_commands(commands_dir, sample_rate=RATE, num_samples=SAMPLES)


@pytest.mark.slow
def test_commands_main_returns_metrics(commands_run, commands_data):
    m = commands_run.metrics
    assert (m["task"], m["model"], m["preset"], m["epochs"]) == ("speech.commands", "ds_cnn", "default", 1)
    assert 0 <= m["test_accuracy"] <= 1 and np.isfinite(m["test_loss"])
    assert m["test_examples"] == len(commands_data.test) > 0 and m["val_examples"] == len(commands_data.validation) > 0
    assert set(m["test_per_class_accuracy"]) == set(SPEECH_COMMANDS_LABELS)
    assert f"{m['parameters']:,} parameters" in commands_run.stdout  # the task prints the parameter count
    assert f"Test accuracy {m['test_accuracy']:.4f}" in commands_run.stdout


@pytest.mark.slow
def test_commands_run_directory(commands_run, commands_data):
    d = commands_run.run_dir
    config = json.loads((d / "config.json").read_text())
    assert config["task"] == "speech.commands"
    assert (config["config"]["sample_rate"], config["config"]["clip_seconds"]) == (RATE, 0.25)
    # The preset's model is ds_cnn too: --model-arg overrides its builder arguments one by one.
    assert config["config"]["model_kwargs"] == {"filters": 8, "blocks": 1, "window_ms": 40.0, "hop_ms": 20.0,
                                                "time_mask_width": 5}
    assert (d / "history.csv").read_text().splitlines()[0].startswith("epoch,")
    assert json.loads((d / "metrics.json").read_text()) == commands_run.metrics
    for png in ("learning_curves.png", "confusion_matrix.png", "spectrograms.png", "spectrograms_augmented.png"):
        assert (d / png).read_bytes()[:8] == PNG_MAGIC, png
    assert (d / "model.weights.h5").stat().st_size > 0

    meta = json.loads((d / "saved_model" / "metadata.json").read_text())
    assert meta["labels"] == list(commands_data.class_names)
    assert (meta["sample_rate"], meta["num_samples"]) == (RATE, SAMPLES)
    assert meta["signatures"]["serve"]["inputs"]["waveforms"]["shape"] == [None, SAMPLES]
    assert meta["signatures"]["serve_wav"]["inputs"]["wav_bytes"]["dtype"] == "string"
    assert meta["signatures"]["serve"]["outputs"]["label"]["dtype"] == "string"
    assert meta["metrics"]["test_accuracy"] == commands_run.metrics["test_accuracy"]
    assert meta["command"].startswith("python -m tasks.speech.commands")
    assert {"tensorflow", "keras"} <= set(meta["versions"])
    assert meta["parameters"] == commands_run.metrics["parameters"]


SERVE_SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf

path, waveforms, wav_dir, out = sys.argv[1:5]
model = tf.saved_model.load(path)
x = tf.constant(np.load(waveforms))
probs = model.serve(x)["probabilities"].numpy()
default = model.signatures["serving_default"](waveforms=x)["probabilities"]
np.testing.assert_allclose(default.numpy(), probs, atol=1e-6)
names = sorted(p for p in __import__("os").listdir(wav_dir))
wavs = [open(f"{wav_dir}/{n}", "rb").read() for n in names]
from_wav = model.serve_wav(tf.constant(wavs))["probabilities"].numpy()
sig = model.signatures["serve_wav"](wav_bytes=tf.constant(wavs))["probabilities"]
np.testing.assert_allclose(sig.numpy(), from_wav, atol=1e-6)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "tasks"))
assert not leaked, leaked
np.savez(out, probs=probs, from_wav=from_wav, names=np.array(names))
"""


@pytest.mark.slow
def test_saved_model_serves_waveforms_and_wav_bytes_in_a_fresh_process(commands_run, commands_data, tmp_path):
    test = commands_data.test
    np.save(tmp_path / "waveforms.npy", test.waveforms)
    wav_dir = tmp_path / "wavs"
    wav_dir.mkdir()
    word = tone(800, RATE, 0.25)
    clips = {  # name: (contents, what the model should see)
        "a_model_rate.wav": wav_bytes(word, RATE),
        "b_16k.wav": wav_bytes(tone(800, 16000, 0.25), 16000),  # resampled to 8 kHz
        "c_44k1.wav": wav_bytes(tone(800, 44100, 0.25), 44100),
        "d_stereo.wav": wav_bytes(np.stack([word, 0.5 * word], 1), RATE),  # downmixed
        "e_short.wav": wav_bytes(word[:500], RATE),  # padded
        "f_long.wav": wav_bytes(tone(800, RATE, 1.0), RATE),  # trimmed
        "g_silence.wav": wav_bytes(np.zeros(SAMPLES, "float32"), RATE),
    }
    for name, contents in clips.items():
        (wav_dir / name).write_bytes(contents)
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    result = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(commands_run.run_dir / "saved_model"),
                             str(tmp_path / "waveforms.npy"), str(wav_dir), str(tmp_path / "out.npz")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    probs, from_wav = out["probs"], out["from_wav"]
    assert list(out["names"]) == sorted(clips)
    for p in (probs, from_wav):
        assert p.dtype == np.float32 and np.all(np.isfinite(p)) and (p >= 0).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert probs.shape == (len(test), 12) and from_wav.shape == (len(clips), 12)

    # The exported graph scores the test split as the evaluation did.
    y = test.labels
    assert np.mean(probs.argmax(axis=1) == y) == pytest.approx(commands_run.metrics["test_accuracy"])
    assert -np.mean(np.log(probs[np.arange(len(y)), y])) == pytest.approx(commands_run.metrics["test_loss"], rel=1e-4)

    # serve_wav is serve after in-graph decoding: compare with zoo.audio's decoding in this process.
    loaded = tf.saved_model.load(str(commands_run.run_dir / "saved_model"))
    decoded = np.stack([load_waveform(c, sample_rate=RATE, num_samples=SAMPLES).numpy() for c in clips.values()])
    np.testing.assert_allclose(from_wav, loaded.serve(tf.constant(decoded))["probabilities"].numpy(), atol=1e-5)
    # The resampled tones are the same tone to the model: decoding really resampled them.
    np.testing.assert_allclose(decoded[1][100:-100], decoded[0][100:-100], atol=5e-3)
    np.testing.assert_allclose(decoded[2][100:-100], decoded[0][100:-100], atol=5e-3)
    np.testing.assert_allclose(decoded[3], 0.75 * decoded[0], atol=1e-4)


@pytest.mark.slow
def test_wav_bytes_that_do_not_decode_fail_the_serve_wav_call(commands_run):
    loaded = tf.saved_model.load(str(commands_run.run_dir / "saved_model"))
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.serve_wav(tf.constant([b"not a wav file"]))


@pytest.mark.slow
def test_digits_on_a_fake_fsdd(tmp_path):
    data_dir = write_fake_fsdd(tmp_path / "data")
    metrics, stdout = run_main(digits.main, [
        *FAST, "--model-arg", "widths=(4, 8)", "--epochs", "1", "--validation-split", "0", "--no-export",
        "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "run")])
    assert (metrics["task"], metrics["model"]) == ("speech.digits", "speech_cnn")
    assert metrics["test_examples"] == 100  # index 0-4 of 2 speakers x 10 digits
    assert "val_accuracy" not in metrics  # --validation-split 0: no validation split
    assert set(metrics["test_per_class_accuracy"]) == set("0123456789")
    assert "20 train, 0 validation, 100 test clips" in stdout
    assert not (tmp_path / "run" / "saved_model").exists()
    assert (tmp_path / "run" / "spectrograms.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("subset, per_class", [("24", 2), ("0.1", None)])
def test_subset_keeps_every_label(commands_data, monkeypatch, subset, per_class):
    import zoo.pipeline
    from zoo.config import parse_config
    from zoo.recipes.audio import AUDIO

    seen = []
    real = zoo.pipeline.audio_dataset
    monkeypatch.setattr(zoo.pipeline, "audio_dataset", lambda x, y, training, **kw: (
        seen.append(np.asarray(y)) if training else None) or real(x, y, training=training, **kw))
    cfg = parse_config(commands.Config, commands.PRESETS, [*COMMANDS_ARGS, "--subset", subset])
    n = AUDIO.datasets(cfg, commands_data)[1]
    counts = np.bincount(seen[0], minlength=len(commands_data.class_names))
    assert n == len(seen[0]) == (24 if per_class else round(0.1 * len(commands_data.train)))
    assert counts.min() >= 1 and (per_class is None or counts.tolist() == [per_class] * len(counts))


@pytest.mark.parametrize("args, error, message", [
    (["--model", "nope"], ZooError, r"Unknown speech model 'nope'\. Known: crnn, ds_cnn, speech_cnn"),
    (["--model", "resnet"], ZooError, r"Unknown speech model 'resnet'"),
    (["--preset", "nope"], ZooError, r"Unknown preset 'nope'\. Known presets: default, small, crnn"),
    (["--noise-prob", "1.5"], ZooError, r"--noise-prob must be in \[0, 1\]\. Received: --noise-prob 1.5"),
    (["--clip-seconds", "0"], ZooError, r"--clip-seconds must be in \(0, 60\]"),
    (["--model-arg", "bogus=1"], ValueError, r"Model 'ds_cnn' does not take bogus"),
    (["--model-arg", "rnn=lstm"], ValueError, r"does not take rnn"),
    (["--model-arg", "sample_rate=16000"], ZooError, r"--model-arg sample_rate: set by the task"),
])
def test_bad_settings_are_errors(args, error, message, tmp_path, commands_dir):
    with pytest.raises(error, match=message):
        commands.main([*COMMANDS_ARGS, "--data-dir", str(commands_dir), "--output-dir", str(tmp_path / "run"), *args])
    assert not (tmp_path / "run" / "saved_model").exists()


@pytest.fixture(scope="module")
def corrupt_commands(tmp_path_factory):
    root = write_fake_commands(tmp_path_factory.mktemp("corrupt"), speakers=2)
    (root / "speech_commands" / "go" / "0000beef_nohash_1.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return root


def test_a_corrupt_wav_is_named(corrupt_commands, tmp_path):
    with pytest.raises(DataError, match=r"speech_commands/go/0000beef_nohash_1\.wav: not a readable audio file"):
        commands.main([*COMMANDS_ARGS, "--data-dir", str(corrupt_commands), "--output-dir", str(tmp_path / "run")])


@pytest.mark.slow
def test_the_command_line_prints_one_error_line(corrupt_commands, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    result = subprocess.run(
        [sys.executable, "-m", "tasks.speech.commands", *COMMANDS_ARGS, "--data-dir", str(corrupt_commands),
         "--output-dir", str(tmp_path / "run")], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "0000beef_nohash_1.wav: not a readable" in last, last
