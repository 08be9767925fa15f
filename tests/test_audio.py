"""Audio on synthetic tones and noise: WAV decoding and bad files, resampling, pad/trim,
speaker and FSDD splits, the in-model log-mel front end against librosa, SpecAugment, and the
waveform pipeline's augmentation."""

import hashlib

import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf

from zoo.audio import (
    MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, fix_length, load_waveform, mix_noise, resample, time_shift, wav_sample_rate,
)
from zoo.data.audio import (
    SPEECH_COMMANDS_LABELS, decode_wav_files, fsdd_split, list_fsdd, load_audio_folder, load_fsdd, load_speech_commands,
    split_by_speaker,
)
from zoo.errors import DataError
from zoo.models.speech import LogMelSpectrogram, SpecAugment, UtteranceNormalization, frontend_settings, mel_filterbank
from zoo.pipeline import audio_dataset
from zoo.registry import build_model


def tone(freq, rate, seconds=0.25, amp=0.5, phase=0.0):
    t = np.arange(int(round(rate * seconds))) / rate
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype("float32")


def wav_bytes(x, rate):
    """16-bit PCM WAV bytes of `x` ([n] mono or [n, channels])."""
    x = np.asarray(x, dtype="float32")
    return tf.audio.encode_wav(x[:, None] if x.ndim == 1 else x, rate).numpy()


def pcm16(x):
    # What a 16-bit WAV round trip does to samples in [-1, 1).
    return np.round(np.asarray(x) * 32768).clip(-32768, 32767) / 32768


# --- pad/trim, resampling, decoding --------------------------------------------------------


def test_fix_length_pads_and_trims_keeping_the_clip_centred():
    np.testing.assert_array_equal(fix_length(np.arange(1.0, 4.0), 7).numpy(), [0, 0, 1, 2, 3, 0, 0])
    np.testing.assert_array_equal(fix_length(np.arange(1.0, 5.0), 7).numpy(), [0, 1, 2, 3, 4, 0, 0])
    np.testing.assert_array_equal(fix_length(np.arange(9.0), 5).numpy(), [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(fix_length(np.arange(5.0), 5).numpy(), np.arange(5.0))
    batch = fix_length(np.ones((2, 3)), 5).numpy()
    np.testing.assert_array_equal(batch, [[0, 1, 1, 1, 0]] * 2)


@pytest.mark.parametrize("rate_in, rate_out, freq", [(8000, 16000, 440), (16000, 8000, 1000), (44100, 16000, 3000),
                                                     (22050, 16000, 5000)])
def test_resampling_keeps_a_tone(rate_in, rate_out, freq):
    x = tone(freq, rate_in, seconds=0.5)
    y = resample(x, rate_in, rate_out).numpy()
    assert y.shape == (int(round(len(x) * rate_out / rate_in)),)
    expected = tone(freq, rate_out, seconds=0.5)
    edge = rate_out // 50  # the first and last 20 ms see the clip's edges
    np.testing.assert_allclose(y[edge:-edge], expected[edge:-edge], atol=2e-3)


def test_resampling_removes_what_the_new_rate_cannot_hold():
    # 6 kHz is above the 4 kHz Nyquist frequency of 8 kHz: it must vanish, not alias to 2 kHz.
    y = resample(tone(6000, 16000), 16000, 8000).numpy()
    assert np.abs(y[100:-100]).max() < 1e-3
    y = resample(tone(3000, 16000), 16000, 8000).numpy()  # below it: kept
    assert np.abs(y[100:-100]).max() > 0.45


def test_resampling_with_a_length_computes_the_centre_only():
    x = np.random.default_rng(0).normal(size=4410).astype("float32")
    full = resample(x, 44100, 16000).numpy()
    np.testing.assert_allclose(resample(x, 44100, 16000, length=800).numpy(), fix_length(full, 800).numpy(), atol=1e-6)
    np.testing.assert_allclose(resample(x, 44100, 16000, length=5000).numpy(), full, atol=1e-6)  # shorter: all of it


def direct_resample(x, rate_in, rate_out, zero_crossings=16, beta=8.6):
    """The windowed-sinc interpolation written out for every output sample, in float64."""
    ratio = rate_out / rate_in
    cutoff = min(ratio, 1.0)
    half = int(np.ceil(zero_crossings / cutoff))
    t = np.arange(int(round(len(x) * ratio))) / ratio
    idx = np.floor(t).astype(int)[:, None] + np.arange(-half + 1, half + 1)[None, :]
    arg = (t[:, None] - idx) * cutoff
    u = arg / zero_crossings
    window = np.where(np.abs(u) <= 1, np.i0(beta * np.sqrt(np.maximum(1 - u * u, 0))) / np.i0(beta), 0)
    taps = np.where((idx >= 0) & (idx < len(x)), np.asarray(x, np.float64)[np.clip(idx, 0, len(x) - 1)], 0)
    return (taps * cutoff * np.sinc(arg) * window).sum(axis=1)


@pytest.mark.parametrize("rate_in, rate_out", [(8000, 16000), (16000, 8000), (44100, 16000), (48000, 16000),
                                               (44101, 16000), (MAX_SAMPLE_RATE, 16000), (MIN_SAMPLE_RATE, 8000)])
def test_polyphase_resampling_is_the_windowed_sinc_written_out(rate_in, rate_out):
    x = np.random.default_rng(0).normal(size=rate_in // 10).astype("float32")
    y = resample(x, rate_in, rate_out).numpy()
    np.testing.assert_allclose(y, direct_resample(x, rate_in, rate_out), atol=1e-5)
    graph = tf.function(lambda x, rate: resample(x, rate, rate_out, length=300))(x, tf.constant(rate_in))
    np.testing.assert_allclose(graph.numpy(), fix_length(y, 300).numpy(), atol=1e-5)


def test_resampling_an_empty_or_one_sample_clip():
    assert resample(np.zeros(0, "float32"), 44100, 16000).numpy().shape == (0,)
    assert resample(np.zeros(1, "float32"), 44100, 16000).numpy().shape == (0,)
    one = resample(np.ones(1, "float32"), 8000, 16000).numpy()
    np.testing.assert_allclose(one, direct_resample([1.0], 8000, 16000), atol=1e-6)


@pytest.mark.parametrize("rate", [0, 7, MIN_SAMPLE_RATE - 1, MAX_SAMPLE_RATE + 1, 10**9, -16000])
def test_rates_outside_the_range_are_refused(rate):
    x = np.zeros(100, "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"rate_in is {rate} Hz; accepted: 1000 to 384000 Hz"):
        resample(x, rate, 16000)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"rate_out is\] \[{rate}\] \[Hz; accepted: 1000 to"):
        tf.function(lambda x, rate: resample(x, 16000, rate))(x, tf.constant(rate))
    if rate >= 0:
        wav = wav_bytes(np.zeros(100), 16000)
        wav = wav[:24] + rate.to_bytes(4, "little") + (2 * rate % 2**32).to_bytes(4, "little") + wav[32:]
        assert wav_sample_rate(wav) == rate
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"declares a sample rate of {rate} Hz; accepted"):
            load_waveform(wav, sample_rate=16000, num_samples=100)


def test_load_waveform_downmixes_resamples_pads_and_trims():
    mono = tone(440, 16000)
    np.testing.assert_allclose(load_waveform(wav_bytes(mono, 16000), sample_rate=16000, num_samples=4000).numpy(),
                               pcm16(mono), atol=1e-7)
    left, right = tone(440, 16000), tone(880, 16000, amp=0.25)
    stereo = load_waveform(wav_bytes(np.stack([left, right], 1), 16000), sample_rate=16000, num_samples=4000).numpy()
    np.testing.assert_allclose(stereo, (pcm16(left) + pcm16(right)) / 2, atol=1e-7)
    upsampled = load_waveform(wav_bytes(tone(440, 8000), 8000), sample_rate=16000, num_samples=4000).numpy()
    np.testing.assert_allclose(upsampled[300:-300], tone(440, 16000)[300:-300], atol=2e-3)
    short = load_waveform(wav_bytes(mono[:1000], 16000), sample_rate=16000, num_samples=4000).numpy()
    np.testing.assert_allclose(short, fix_length(pcm16(mono[:1000]), 4000).numpy(), atol=1e-7)
    assert short[:1500].max() == 0 and short[-1500:].max() == 0 and short[1500:2500].max() > 0.4
    long = load_waveform(wav_bytes(np.tile(mono, 3), 16000), sample_rate=16000, num_samples=4000).numpy()
    np.testing.assert_allclose(long, pcm16(np.tile(mono, 3))[4000:8000], atol=1e-7)


def test_decode_wav_files_reads_every_file_in_order(tmp_path):
    clips = [tone(200 * (i + 1), 8000, seconds=0.1 * (i + 1)) for i in range(5)]
    files = []
    for i, x in enumerate(clips):
        files.append(tmp_path / f"{i}.wav")
        files[-1].write_bytes(wav_bytes(x, 8000))
    out = decode_wav_files(files, sample_rate=8000, num_samples=2000)
    assert out.shape == (5, 2000) and out.dtype == np.float32
    for x, y in zip(clips, out):
        np.testing.assert_allclose(y, fix_length(pcm16(x), 2000).numpy(), atol=1e-7)


@pytest.mark.parametrize("contents, reason", [
    (b"", "empty file"),
    (b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(40), "not a readable"),
    (b"this is not audio at all, just some text in a file named .wav", "not a readable"),
    ("no-samples", "no audio samples"),
    ("truncated", "not a readable"),
    ("rate-7", r"the WAV file declares a sample rate of 7 Hz; accepted: 1000 to 384000 Hz\."),
    ("rate-1e9", "declares a sample rate of 1000000000 Hz"),
])
def test_a_bad_wav_file_is_a_data_error_naming_it(tmp_path, contents, reason):
    good = tmp_path / "good.wav"
    good.write_bytes(wav_bytes(tone(440, 8000), 8000))
    if contents == "no-samples":
        contents = wav_bytes(np.zeros(0, "float32"), 8000)
    elif contents == "truncated":
        contents = wav_bytes(tone(440, 8000), 8000)[:30]
    elif isinstance(contents, str) and contents.startswith("rate-"):  # the header's rate and byte rate replaced
        rate = int(float(contents[5:]))
        contents = wav_bytes(tone(440, 8000), 8000)
        contents = contents[:24] + rate.to_bytes(4, "little") + (2 * rate).to_bytes(4, "little") + contents[32:]
    bad = tmp_path / "bad_0.wav"
    bad.write_bytes(contents)
    with pytest.raises(DataError, match=r"bad_0\.wav: .*" + reason):
        decode_wav_files([good, good, bad, good], sample_rate=8000, num_samples=2000)


# --- splits and loaders ----------------------------------------------------------------------


def test_split_by_speaker_keeps_each_speaker_in_one_split():
    speakers = [hashlib.md5(str(i).encode()).hexdigest()[:8] for i in range(3000)]
    files = [f"yes/{s}_nohash_{n}.wav" for s in speakers for n in range(2)] + [f"no/{s}_nohash_0.wav" for s in speakers]
    splits = split_by_speaker(files, 0.1, 0.1)
    by_speaker = {}
    for f, s in zip(files, splits):
        by_speaker.setdefault(f.split("/")[1].split("_")[0], set()).add(s)
    assert all(len(v) == 1 for v in by_speaker.values())
    fractions = {k: sum(next(iter(v)) == k for v in by_speaker.values()) / len(speakers) for k in ("validation", "test")}
    assert fractions["validation"] == pytest.approx(0.1, abs=0.02) and fractions["test"] == pytest.approx(0.1, abs=0.02)
    assert split_by_speaker(files, 0.1, 0.1) == splits  # deterministic
    assert split_by_speaker(files[::-1], 0.1, 0.1) == splits[::-1]  # independent of the order
    assert set(split_by_speaker(files, 0.0, 0.0)) == {"train"}
    # Files without a speaker (the _silence_ noise clips) are split by their file name.
    noise = [f"_silence_/{i}.wav" for i in range(2000)]
    assert 0.05 < split_by_speaker(noise, 0.1, 0.1).count("test") / len(noise) < 0.15
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_by_speaker(files, 0.5, 0.5)


def test_fsdd_split_keeps_the_official_test_set():
    files = [f"{d}_{s}_{i}.wav" for d in range(10) for s in ("jackson", "theo") for i in range(50)]
    splits = fsdd_split(files, 0.1)
    assert [s == "test" for s in splits] == [int(f.split("_")[2][:-4]) < 5 for f in files]
    rest = [s for s in splits if s != "test"]
    assert rest.count("validation") / len(rest) == pytest.approx(0.1, abs=0.03)
    assert "validation" not in fsdd_split(files, 0.0)
    with pytest.raises(DataError, match="not an FSDD file name"):
        fsdd_split(["yes.wav"], 0.1)


def write_clips(folder, names, rate=16000, seconds=0.25, freq=440):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).write_bytes(wav_bytes(tone(freq + 10 * i, rate, seconds), rate))


def test_audio_folder_is_split_by_speaker_and_gives_its_silence_as_noise(tmp_path):
    speakers = [f"{i:08x}" for i in range(40)]
    for label in ("go", "stop"):
        write_clips(tmp_path / label, [f"{s}_nohash_0.wav" for s in speakers])
    write_clips(tmp_path / "_silence_", [f"{i}.wav" for i in range(30)])
    write_clips(tmp_path / "_background_noise_", ["white_noise.wav"], seconds=2.0)  # skipped
    data = load_audio_folder(tmp_path, sample_rate=8000, num_samples=1000, validation_split=0.2, test_split=0.2)
    assert data.class_names == ("_silence_", "go", "stop")
    assert len(data.train) + len(data.validation) + len(data.test) == 110
    assert data.train.waveforms.shape[1:] == (1000,) and data.train.waveforms.dtype == np.float32
    speakers_of = {s: {f.split("/")[-1].split("_")[0] for f in getattr(data, s).files if "_nohash_" in f}
                   for s in ("train", "validation", "test")}
    assert not (speakers_of["train"] & speakers_of["test"]) and not (speakers_of["train"] & speakers_of["validation"])
    assert all(speakers_of.values())
    noise = data.noise()
    assert len(noise) == int(np.sum(data.train.labels == 0)) > 0


def test_speech_commands_needs_its_twelve_labels(tmp_path):
    for label in SPEECH_COMMANDS_LABELS[:-1]:  # no _unknown_
        write_clips(tmp_path / "speech_commands" / label, ["0000000a_nohash_0.wav", "0000000b_nohash_0.wav"])
    with pytest.raises(DataError, match=r"missing: _unknown_; unexpected: none"):
        load_speech_commands(tmp_path, sample_rate=8000, num_samples=1000)


def test_fsdd_folder_and_a_missing_one(tmp_path):
    write_clips(tmp_path / "fsdd" / "recordings", [f"{d}_theo_{i}.wav" for d in range(10) for i in range(7)], rate=8000)
    data = load_fsdd(tmp_path, sample_rate=8000, num_samples=2000, validation_split=0.0)
    assert data.class_names == tuple("0123456789")
    assert (len(data.train), len(data.validation), len(data.test)) == (20, 0, 50)
    assert np.bincount(data.test.labels).tolist() == [5] * 10
    assert data.noise() is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No FSDD found in .*empty"):
        load_fsdd(tmp_path / "empty", sample_rate=8000, num_samples=2000)


def test_audio_folder_with_an_empty_label_folder(tmp_path):
    for label in ("go", "stop"):
        write_clips(tmp_path / label, ["0000000a_nohash_0.wav", "0000000b_nohash_0.wav"])
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "README").write_text("no clips")
    with pytest.raises(DataError, match="no clips .* in this class folder") as e:
        load_audio_folder(tmp_path, sample_rate=8000, num_samples=1000)
    assert str(e.value).startswith(f"{tmp_path / 'up'}: ")


def test_an_fsdd_copy_missing_a_take_is_refused(tmp_path, monkeypatch):
    # Listing reads names only: empty files stand for the 500 recordings of one speaker.
    folder = tmp_path / "recordings"
    folder.mkdir()
    for d in range(10):
        for i in range(50):
            (folder / f"{d}_theo_{i}.wav").write_bytes(b"")
    monkeypatch.delenv("ZOO_PARTIAL_DATA")
    assert len(list_fsdd(folder)[0]) == 500
    (folder / "3_theo_17.wav").unlink()
    with pytest.raises(DataError, match=r"recordings/3_theo_\*\.wav: 49 recordings, expected 50 .*truncated"):
        list_fsdd(folder)


# --- the log-mel front end -----------------------------------------------------------------


@pytest.mark.parametrize("rate, fft, mels, fmin, fmax", [(16000, 512, 40, 20, None), (8000, 256, 40, 20, None),
                                                         (16000, 1024, 64, 0, 7000), (22050, 2048, 128, 0, None)])
def test_mel_filterbank_is_librosas(rate, fft, mels, fmin, fmax):
    ours = mel_filterbank(sample_rate=rate, fft_length=fft, num_mel_bins=mels, fmin=fmin, fmax=fmax)
    theirs = librosa.filters.mel(sr=rate, n_fft=fft, n_mels=mels, fmin=fmin, fmax=fmax).T
    assert ours.shape == (fft // 2 + 1, mels)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-8)


def librosa_log_mel(x, rate, window_ms=30.0, hop_ms=10.0, mels=40, fmin=20.0):
    fft, frame, step = frontend_settings(rate, window_ms, hop_ms)
    power = librosa.feature.melspectrogram(y=x, sr=rate, n_fft=fft, win_length=frame, hop_length=step, n_mels=mels,
                                           fmin=fmin)
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80.0).T


def log_mel_layer(rate, window_ms=30.0, hop_ms=10.0, mels=40, fmin=20.0):
    fft, frame, step = frontend_settings(rate, window_ms, hop_ms)
    return LogMelSpectrogram(sample_rate=rate, fft_length=fft, frame_length=frame, frame_step=step, num_mel_bins=mels,
                             fmin=fmin)


# Tolerance: 0.01 dB. float32 STFTs (ours, TF's) against float64 (librosa's numpy) differ by
# about 1e-4 dB where the power is high and up to about 1e-3 dB near the -80 dB floor.
LIBROSA_DB_ATOL = 0.01


@pytest.mark.parametrize("rate, window_ms, hop_ms", [(16000, 30.0, 10.0), (8000, 30.0, 10.0), (16000, 40.0, 20.0),
                                                     (16000, 32.0, 16.0)])
def test_log_mel_matches_librosa_on_tones_and_noise(rate, window_ms, hop_ms):
    rng = np.random.default_rng(0)
    clips = np.stack([
        tone(440, rate, 0.5) + tone(2500, rate, 0.5, amp=0.1),
        tone(150, rate, 0.5, amp=0.9) * np.hanning(rate // 2).astype("float32"),  # fades in and out
        (0.1 * rng.normal(size=rate // 2)).astype("float32"),
        np.concatenate([np.zeros(rate // 4, "float32"), tone(1000, rate, 0.25, amp=0.01)]),  # quiet, half silence
    ])
    layer = log_mel_layer(rate, window_ms, hop_ms)
    ours = keras.ops.convert_to_numpy(layer(clips))
    for x, y in zip(clips, ours):
        expected = librosa_log_mel(x, rate, window_ms, hop_ms)
        assert y.shape == expected.shape == (1 + len(x) // layer.frame_step, 40)
        np.testing.assert_allclose(y, expected, atol=LIBROSA_DB_ATOL)
    # Each clip's top_db floor is its own: a loud neighbour in the batch changes nothing.
    alone = keras.ops.convert_to_numpy(layer(clips[3:]))[0]
    np.testing.assert_allclose(alone, ours[3], atol=1e-5)


def test_log_mel_shapes_and_dtype_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")  # the autouse fixture resets it
    layer = log_mel_layer(16000)
    x = keras.Input(shape=(16000,))
    assert tuple(layer(x).shape) == (None, 101, 40)
    y = layer(np.zeros((2, 16000), "float32"))
    assert y.dtype == "float32" and tuple(y.shape) == (2, 101, 40)
    assert tuple(layer.compute_output_shape((None, 12345))) == (None, 1 + 12345 // 160, 40)


def test_silence_gives_zeros_not_nans():
    x = np.zeros((2, 4000), "float32")
    spec = keras.ops.convert_to_numpy(UtteranceNormalization()(log_mel_layer(8000)(x)))
    np.testing.assert_array_equal(spec, 0.0)
    for name in ("speech_cnn", "ds_cnn", "crnn"):
        model = build_model(name, num_classes=3, sample_rate=8000, num_samples=4000)
        for training in (False, True):
            logits = keras.ops.convert_to_numpy(model(x, training=training))
            assert np.all(np.isfinite(logits)), (name, training)


def test_utterance_normalization_gives_zero_mean_unit_variance():
    x = np.random.default_rng(0).normal(3.0, 5.0, size=(3, 20, 8)).astype("float32")
    y = keras.ops.convert_to_numpy(UtteranceNormalization()(x))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1, atol=1e-4)


def test_spec_augment_masks_whole_bands_in_training_only():
    x = np.random.default_rng(0).normal(size=(16, 50, 20)).astype("float32") + 10.0  # no zeros of its own
    layer = SpecAugment(time_masks=2, time_mask_width=6, freq_masks=1, freq_mask_width=4, seed=1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    assert y.shape == x.shape
    masked = y == 0
    assert np.array_equal(y[~masked], x[~masked])  # what is not masked is untouched
    frames = masked.all(axis=2)  # whole frames masked
    bins = masked.all(axis=1)  # whole bins masked
    assert np.array_equal(masked, frames[:, :, None] | bins[:, None, :])  # masks are whole bands
    assert frames.sum(axis=1).max() <= 12 and bins.sum(axis=1).max() <= 4
    assert frames.any() and bins.any()
    assert not np.array_equal(y, keras.ops.convert_to_numpy(layer(x, training=True)))  # new masks each call
    off = SpecAugment(time_masks=0, freq_masks=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(off(x, training=True)), x)


# --- waveform augmentation -----------------------------------------------------------------


def test_time_shift_moves_clips_and_fills_with_zeros():
    x = np.tile(np.arange(1.0, 101.0, dtype="float32"), (64, 1))
    y = time_shift(tf.constant(x), 10).numpy()
    assert y.shape == x.shape
    candidates = {s: np.roll(np.pad(x[0], 10), s)[10:110] for s in range(-10, 11)}  # zero fill, no wrap
    shifts = [next(s for s, c in candidates.items() if np.array_equal(row, c)) for row in y]  # fails if none
    assert len(set(shifts)) > 5
    np.testing.assert_array_equal(time_shift(tf.constant(x), 0).numpy(), x)


def test_mix_noise_adds_scaled_noise_clips():
    x = np.zeros((256, 50), "float32")
    noise = np.stack([np.full(50, 0.5, "float32"), np.full(50, -0.5, "float32")])
    np.testing.assert_array_equal(mix_noise(tf.constant(x), noise, prob=0.0, volume=0.5).numpy(), x)
    y = mix_noise(tf.constant(x), noise, prob=1.0, volume=0.4).numpy()
    gains = y[:, 0] / 0.5
    assert np.all(np.abs(gains) <= 0.4 + 1e-6) and (gains > 0).any() and (gains < 0).any()
    np.testing.assert_allclose(y, y[:, :1] * np.ones((1, 50)), atol=1e-7)  # a whole clip, one gain
    some = mix_noise(tf.constant(x), noise, prob=0.5, volume=0.4).numpy()
    assert 0.3 < np.mean(np.abs(some[:, 0]) > 0) < 0.7
    loud = mix_noise(tf.constant(np.full((4, 50), 0.9, "float32")), noise, prob=1.0, volume=1.0).numpy()
    assert loud.max() <= 1.0  # clipped


def test_training_pipeline_augments_but_keeps_shapes_and_labels():
    rng = np.random.default_rng(0)
    waveforms = np.stack([tone(200 + 50 * i, 8000, 0.25) for i in range(20)])
    labels = np.arange(20) % 4
    noise = (0.3 * rng.normal(size=(3, 2000))).astype("float32")
    ds = audio_dataset(waveforms, labels, batch_size=8, training=True, time_shift=200, noise=noise, noise_prob=1.0,
                       noise_volume=0.5, seed=0)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    x, y = np.concatenate(xs), np.concatenate(ys)
    # Training pipelines may hand batches over in any order (deterministic=False): sizes, not their order.
    assert x.shape == waveforms.shape and x.dtype == np.float32 and sorted(len(b) for b in ys) == [4, 8, 8]
    # Each clip keeps its label: match it back through the (unaugmented) tone frequency.
    for clip, label in zip(x, y):
        spectrum = np.abs(np.fft.rfft(clip))
        i = int(np.argmin([abs(np.argmax(spectrum) * 4 - (200 + 50 * j)) for j in range(20)]))
        assert labels[i] == label
    assert not any(np.allclose(clip, w) for clip in x for w in waveforms)  # all augmented
    evaluation = audio_dataset(waveforms, labels, batch_size=8, training=False)
    x_eval = np.concatenate([b for b, _ in evaluation.as_numpy_iterator()])
    np.testing.assert_array_equal(x_eval, waveforms)  # in order, untouched


# --- TFDS (no network here: a stand-in for tfds.load) ----------------------------------------


def fake_tfds_load(examples):
    """A `tfds.load(name, split=[...], with_info=True)` stand-in serving `examples[split]`."""
    from types import SimpleNamespace

    def load(name, split, with_info):
        info = SimpleNamespace(features={"label": SimpleNamespace(names=examples["names"])})
        return [tf.data.Dataset.from_tensor_slices(examples[s]) for s in split], info

    return load


def test_speech_commands_from_tfds_uses_its_splits(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    audio = (np.stack([tone(440, 16000, 1.0)] * 3) * 32767).astype("int64")
    split = {"audio": audio[:, :12000], "label": np.array([0, 1, 2])}  # shorter than 1 s: padded
    monkeypatch.setattr(tfds, "load", fake_tfds_load(
        {"train": split, "validation": split, "test": split, "names": ["down", "go", "_silence_"]}))
    data = load_speech_commands(sample_rate=8000, num_samples=8000)
    assert data.source == "tfds:speech_commands" and data.class_names == ("down", "go", "_silence_")
    assert data.train.waveforms.shape == (3, 8000) and data.test.labels.tolist() == [0, 1, 2]
    expected = fix_length(resample(audio[0, :12000] / 32768.0, 16000, 8000), 8000).numpy()
    np.testing.assert_allclose(data.train.waveforms[0], expected, atol=1e-6)
    assert len(data.noise()) == 1


def test_fsdd_from_tfds_keeps_the_official_split(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    names = [f"{d}_theo_{i}.wav" for d in range(2) for i in range(10)]
    examples = {"audio": (np.stack([tone(300, 8000, 0.5)] * 20) * 32767).astype("int64"),
                "label": np.array([int(n[0]) for n in names]), "audio/filename": np.array(names)}
    monkeypatch.setattr(tfds, "load", fake_tfds_load({"train": examples, "names": [str(d) for d in range(10)]}))
    data = load_fsdd(sample_rate=8000, num_samples=8000, validation_split=0.0)
    assert data.source == "tfds:spoken_digit"
    assert (len(data.train), len(data.validation), len(data.test)) == (10, 0, 10)
    assert all(int(f.split("_")[2][:-4]) < 5 for f in data.test.files)


def test_tfds_failures_are_one_data_error(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)

    def offline(*args, **kwargs):
        raise ConnectionError("no network\nmore lines")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(DataError, match=r"Could not load 'speech_commands' from TensorFlow Datasets \(ConnectionError: "
                                        r"no network\)\. Offline, point --data-dir or ZOO_DATA_DIR"):
        load_speech_commands()


@pytest.mark.parametrize("rate_in, rate_out, n, length", [
    (44100, 16000, 44100, None), (8000, 16000, 6000, None), (16000, 8000, 16000, 5600), (48000, 16000, 100000, 16000),
    (22050, 16000, 30000, None), (1000, 384000, 300, None), (384000, 1000, 400000, None), (16000, 44100, 5000, 8000)])
def test_the_numpy_resampler_of_training_data_is_the_graph_resampler(rate_in, rate_out, n, length):
    from zoo.audio import resample, resample_numpy

    x = np.random.default_rng(0).normal(size=n).astype("float32")
    expected = resample(x, rate_in, rate_out, length=length).numpy()
    got = resample_numpy(x, rate_in, rate_out, length=length)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
