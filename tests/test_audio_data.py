"""Audio of any format into the one splits type: folders of WAV (8/16/24-bit, float), FLAC and OGG
clips at 8, 16 and 44.1 kHz, mono and stereo, of varying lengths (generated with soundfile);
splits by speaker and stratified; every kind of bad input; `AudioData` as `Splits` and through
the search's pickle-free handoff; and the predictor on the same clip in each format, with named
and unnamed outputs."""

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from zoo.audio import load_waveform, read_audio, serving_endpoints, serving_metadata
from zoo.data import Split, Splits
from zoo.data.audio import AudioData, AudioSplit, decode_audio_files, load_audio_dataset
from zoo.errors import DataError

FREQS = {"high": 1500.0, "low": 440.0}


def tone(freq, rate, seconds, amp=0.5, channels=1):
    t = np.arange(int(round(rate * seconds))) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype("float32")
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def on_16_bits(x):
    # Samples that every format here holds exactly: a 16-bit WAV of them equals their float WAV.
    return (np.round(np.asarray(x) * 32768) / 32768).astype("float32")


# (file name, rate, seconds, channels, soundfile subtype) for each label: 6 clips.
MIXED = [("a_0.wav", 8000, 0.5, 1, "PCM_16"), ("a_1.wav", 16000, 0.4, 2, "PCM_24"), ("a_2.flac", 44100, 0.6, 1, "PCM_16"),
         ("a_3.wav", 44100, 0.5, 1, "FLOAT"), ("a_4.wav", 16000, 0.5, 1, "PCM_16"), ("a_5.wav", 16000, 0.5, 1, "PCM_16")]


def write_mixed(root):
    """`root/{high,low}/`: the clips of MIXED, a tone of the label's frequency; high's last clip
    1.5 s long, low's 0.7 s."""
    durations = []
    for label, freq in FREQS.items():
        (root / label).mkdir(parents=True)
        for i, (name, rate, seconds, channels, subtype) in enumerate(MIXED):
            if i == 5:
                seconds = 1.5 if label == "high" else 0.7
            sf.write(root / label / name, tone(freq, rate, seconds, channels=channels), rate, subtype=subtype)
            durations.append(seconds)
    return durations


def dominant_frequency(x, rate):
    spectrum = np.abs(np.fft.rfft(x))
    return np.argmax(spectrum) * rate / len(x)


def test_a_folder_of_mixed_formats_rates_channels_and_lengths(tmp_path):
    durations = write_mixed(tmp_path)
    data = load_audio_dataset(tmp_path, sample_rate=16000, validation_split=0.2, test_split=0.2)
    assert isinstance(data, AudioData) and isinstance(data, Splits) and data.kind == "audio"
    assert data.class_names == ("high", "low") and data.source == str(tmp_path)
    # Each label: 6 clips, 1 to validation and 1 to test (stratified).
    assert (len(data.train), len(data.validation), len(data.test)) == (8, 2, 2)
    for split in (data.train, data.validation, data.test):
        assert isinstance(split, AudioSplit) and split.waveforms is split.x
        assert np.bincount(split.labels, minlength=2).tolist() == [len(split) // 2] * 2
    # The 95th percentile of the durations (1.06 s), rounded up to 0.1 s.
    assert np.percentile(durations, 95) == pytest.approx(1.06)
    assert data.spec == {"sample_rate": 16000, "num_samples": 17600}
    assert (data.sample_rate, data.num_samples) == (16000, 17600)
    assert data.train.waveforms.shape == (8, 17600) and data.train.waveforms.dtype == np.float32
    notes = "\n".join(data.notes)
    for line in ("split: stratified by label, seed 0",
                 "clip length 1.1 s: the 95th percentile of the clips' durations (1.060 s), rounded up to 0.1 s, "
                 "at most 10 s",
                 "rates: 8000 Hz x 2, 16000 Hz x 6, 44100 Hz x 4 (resampled to 16000 Hz)",
                 "channels: 1 x 10, 2 x 2 (downmixed to mono)",
                 "1 clips longer than 1.1 s centre-trimmed", "11 clips shorter than 1.1 s padded with silence (centred)",
                 "formats: wav 10, flac 2", "sample types: PCM_16 8, PCM_24 2, FLOAT 2"):
        assert line in data.notes, (line, notes)
    # Every clip, whatever its rate, format and channels, is its label's tone at 16 kHz.
    for split in (data.train, data.validation, data.test):
        for x, label, f in zip(split.waveforms, split.labels, split.files):
            freq = FREQS[data.class_names[label]]
            assert abs(dominant_frequency(x, 16000) - freq) <= 16000 / 17600, f
            assert 0.45 < np.abs(x).max() < 0.55, f
    # The 1.5 s clip is centre-trimmed: it fills the whole window.
    (i,) = [k for k, f in enumerate(data.train.files + data.validation.files + data.test.files) if "high/a_5" in f]
    long = np.concatenate([data.train.waveforms, data.validation.waveforms, data.test.waveforms])[i]
    assert np.abs(long[:800]).max() > 0.4 and np.abs(long[-800:]).max() > 0.4


def test_a_fixed_clip_length_and_the_same_split_for_the_same_seed(tmp_path):
    write_mixed(tmp_path)
    a = load_audio_dataset(tmp_path, sample_rate=8000, clip_seconds=0.25, validation_split=0.2, test_split=0.2, seed=1)
    assert a.spec == {"sample_rate": 8000, "num_samples": 2000}
    assert "12 clips longer than 0.25 s centre-trimmed" in a.notes
    assert not any(n.startswith("clip length") for n in a.notes)
    b = load_audio_dataset(tmp_path, sample_rate=8000, clip_seconds=0.25, validation_split=0.2, test_split=0.2, seed=1)
    assert a.test.files == b.test.files and np.array_equal(a.train.x, b.train.x)
    others = {load_audio_dataset(tmp_path, sample_rate=8000, clip_seconds=0.25, validation_split=0.2, test_split=0.2,
                                 seed=s).test.files for s in range(2, 4)}
    assert len(others | {a.test.files}) > 1  # the seed draws the split


def test_an_ogg_clip_and_a_long_folder_capped_at_ten_seconds(tmp_path):
    for label, freq in FREQS.items():
        (tmp_path / label).mkdir()
        for i in range(3):
            sf.write(tmp_path / label / f"{i}.ogg", tone(freq, 16000, 12.0, amp=0.3), 16000, format="OGG")
    data = load_audio_dataset(tmp_path, sample_rate=8000, validation_split=0.0, test_split=0.34)
    assert data.spec == {"sample_rate": 8000, "num_samples": 80000}  # 12 s clips: capped at 10 s
    assert "6 clips longer than 10 s centre-trimmed" in data.notes and "formats: ogg 6" in data.notes
    for x, label in zip(data.train.waveforms, data.train.labels):
        assert abs(dominant_frequency(x, 8000) - FREQS[data.class_names[label]]) <= 8000 / 80000 * 2


def test_speaker_named_files_are_split_by_speaker(tmp_path):
    speakers = [f"{i:08x}" for i in range(40)]
    for label, freq in FREQS.items():
        (tmp_path / label).mkdir()
        for s in speakers:
            for n in range(2):
                sf.write(tmp_path / label / f"{s}_nohash_{n}.flac", tone(freq, 8000, 0.1), 8000)
    data = load_audio_dataset(tmp_path, sample_rate=8000, validation_split=0.2, test_split=0.2)
    assert "split: by speaker (<speaker>_nohash_<n> file names)" in data.notes
    speakers_of = {s: {f.split("/")[-1].split("_")[0] for f in getattr(data, s).files}
                   for s in ("train", "validation", "test")}
    assert all(speakers_of.values())
    assert not (speakers_of["train"] & speakers_of["test"]) and not (speakers_of["train"] & speakers_of["validation"])
    assert not (speakers_of["validation"] & speakers_of["test"])


def test_train_and_test_folders_with_validation_drawn_from_train(tmp_path):
    for split, n in (("train", 10), ("test", 3)):
        for label, freq in FREQS.items():
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(n):
                sf.write(tmp_path / split / label / f"{i}.wav", tone(freq, 16000, 0.2), 16000, subtype="PCM_24")
    data = load_audio_dataset(tmp_path, sample_rate=16000, validation_split=0.2, test_split=0.5)
    assert (len(data.train), len(data.validation), len(data.test)) == (16, 4, 6)  # test_split unused: test/ is there
    assert all("/test/" in f for f in data.test.files) and all("/train/" in f for f in data.validation.files)
    assert data.spec["num_samples"] == 3200
    assert "split: stratified by label, seed 0; from the folders train/, test/" in data.notes
    # A test folder holding only some of the labels is fine.
    for f in (tmp_path / "test" / "low").iterdir():
        f.unlink()
    (tmp_path / "test" / "low").rmdir()
    assert np.unique(load_audio_dataset(tmp_path, sample_rate=16000).test.labels).tolist() == [0]


def test_sixteen_bit_wavs_decode_as_the_graph_does(tmp_path):
    files = []
    for i, (rate, channels) in enumerate(((16000, 1), (8000, 1), (44100, 2), (16000, 2))):
        files.append(tmp_path / f"{i}.wav")
        x = tone(300 + 100 * i, rate, 0.3 + 0.2 * i, channels=channels)
        files[-1].write_bytes(tf.audio.encode_wav(x if channels > 1 else x[:, None], rate).numpy())
    ours, _ = decode_audio_files(files, sample_rate=16000, num_samples=8000)
    graph = np.stack([load_waveform(f.read_bytes(), sample_rate=16000, num_samples=8000).numpy() for f in files])
    np.testing.assert_allclose(ours, graph, atol=1e-6)


# --- bad input ---------------------------------------------------------------------------------


def good_folder(root):
    for label, freq in FREQS.items():
        (root / label).mkdir(parents=True)
        for i in range(3):
            sf.write(root / label / f"{i}.wav", tone(freq, 8000, 0.1), 8000)


def rate_wav(rate):
    wav = tf.audio.encode_wav(tone(440, 8000, 0.1)[:, None], 8000).numpy()
    return wav[:24] + rate.to_bytes(4, "little") + (2 * rate % 2**32).to_bytes(4, "little") + wav[32:]


@pytest.mark.parametrize("make, message", [
    (lambda r: (r / "low" / "bad.wav").write_bytes(b"not audio at all, only text in a .wav"),
     r"low/bad\.wav: not a readable audio file \(WAV, FLAC, OGG or MP3; Format not recognised\.\)"),
    (lambda r: (r / "low" / "bad.flac").write_bytes(b""), r"low/bad\.flac: not a readable audio file \(empty file\)"),
    (lambda r: (r / "low" / "bad.wav").write_bytes(tf.audio.encode_wav(np.zeros((0, 1), "float32"), 8000).numpy()),
     r"low/bad\.wav: the WAV file holds no audio samples\."),
    (lambda r: (r / "low" / "bad.wav").write_bytes(rate_wav(500)),
     r"low/bad\.wav: the WAV file declares a sample rate of 500 Hz; accepted: 1000 to 384000 Hz\."),
    (lambda r: (r / "low" / "bad.wav").write_bytes(rate_wav(10**9)),
     r"low/bad\.wav: the WAV file declares a sample rate of 1000000000 Hz"),
    (lambda r: (r / "silent").mkdir(), r"/silent: no clips \(\.flac, \.mp3, \.ogg, \.wav\) in this class folder"),
])
def test_bad_input_is_one_data_error_naming_the_file_or_folder(tmp_path, make, message):
    good_folder(tmp_path)
    make(tmp_path)
    for clip_seconds in (None, 0.1):  # the header read for the length, and the decoding
        with pytest.raises(DataError, match=message) as e:
            load_audio_dataset(tmp_path, sample_rate=8000, clip_seconds=clip_seconds)
        assert "\n" not in str(e.value)


def test_one_label_a_stray_test_label_and_a_missing_folder(tmp_path):
    (tmp_path / "one" / "low").mkdir(parents=True)
    sf.write(tmp_path / "one" / "low" / "0.wav", tone(440, 8000, 0.1), 8000)
    with pytest.raises(DataError, match=r"one: one label folder \(low\); a classifier needs two or more"):
        load_audio_dataset(tmp_path / "one")
    good_folder(tmp_path / "split" / "train")
    (tmp_path / "split" / "test" / "cat").mkdir(parents=True)
    sf.write(tmp_path / "split" / "test" / "cat" / "0.wav", tone(440, 8000, 0.1), 8000)
    with pytest.raises(DataError, match=r"split/test/cat: label 'cat' is not in .*split/train \(its labels: high, low\)"):
        load_audio_dataset(tmp_path / "split")
    with pytest.raises(DataError, match=r"nowhere: no such folder"):
        load_audio_dataset(tmp_path / "nowhere")
    good_folder(tmp_path / "lonely" / "test")
    with pytest.raises(DataError, match=r"lonely: test/ without train/"):
        load_audio_dataset(tmp_path / "lonely")


# --- one splits type ---------------------------------------------------------------------------


def test_audio_data_is_the_common_splits_type_and_crosses_the_handoff(tmp_path):
    from tuning import handoff

    x = np.arange(12, dtype="float32").reshape(6, 2)
    labels = np.array([0, 1, 0, 1, 0, 1])
    split = Split(x[:4], labels[:4], ("a", "b", "c", "d"))
    data = AudioData("audio", split, Split(x[:0], labels[:0]), Split(x[4:], labels[4:], ("e", "f")),
                     class_names=("_silence_", "go"), source="here", spec={"sample_rate": 8000, "num_samples": 2})
    assert isinstance(data.train, AudioSplit)
    np.testing.assert_array_equal(data.train.waveforms, x[:4])
    np.testing.assert_array_equal(data.noise(), x[[0, 2]])
    assert isinstance(data.train.take([1]), AudioSplit)
    # What the speech flow does to take a subset: positional (waveforms, labels, files).
    assert len(type(data.train)(data.train.waveforms[:1], data.train.labels[:1], data.train.files[:1])) == 1
    digest = handoff.save(data, tmp_path / "data.npz")
    back = handoff.load(tmp_path / "data.npz", digest)
    assert type(back) is AudioData and type(back.train) is AudioSplit
    assert (back.sample_rate, back.num_samples, back.class_names, back.notes) == (8000, 2, data.class_names, [])
    np.testing.assert_array_equal(back.test.waveforms, data.test.waveforms)
    assert back.train.files == data.train.files
    with pytest.raises(ValueError, match="spec with sample_rate and num_samples"):
        dataclasses.replace(data, spec={})


# --- the predictor -----------------------------------------------------------------------------


RATE, SAMPLES = 8000, 2000
LABELS = ["low", "mid", "high"]


def export_toy(path, class_names):
    from zoo.export import export_saved_model
    from zoo.registry import build_model
    from zoo.safety import write_manifest

    model = build_model("ds_cnn", num_classes=len(LABELS), sample_rate=RATE, num_samples=SAMPLES, filters=8, blocks=1)
    export_saved_model(model, path, **serving_endpoints(model, sample_rate=RATE, num_samples=SAMPLES,
                                                        class_names=class_names),
                       metadata={"name": path.name, "labels": LABELS, "kind": "audio_classifier",
                                 **serving_metadata(sample_rate=RATE, num_samples=SAMPLES, num_classes=len(LABELS),
                                                    class_names=class_names)})
    write_manifest(path)
    return path


@pytest.fixture(scope="module")
def toy_entries(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio_entries")
    return {"named": export_toy(root / "named", LABELS), "unnamed": export_toy(root / "unnamed", None)}


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    """One clip (16 kHz stereo, 0.4 s, on 16-bit values) in every format."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    x = on_16_bits(np.stack([tone(700, 16000, 0.4), 0.2 * rng.standard_normal(6400)], axis=1).clip(-0.9, 0.9))
    files = {}
    for name, subtype in (("pcm16.wav", "PCM_16"), ("pcm24.wav", "PCM_24"), ("pcm32.wav", "PCM_32"),
                          ("float.wav", "FLOAT"), ("double.wav", "DOUBLE"), ("clip.flac", "PCM_16")):
        sf.write(root / name, x, 16000, subtype=subtype)
        files[name] = root / name
    sf.write(root / "clip.ogg", x, 16000, format="OGG")
    files["clip.ogg"] = root / "clip.ogg"
    return files


@pytest.mark.parametrize("entry", ["named", "unnamed"])
def test_the_predictor_reads_any_format_and_gives_the_16_bit_wav_probabilities(toy_entries, clip_files, entry):
    from zoo.pretrained import load

    model = load(toy_entries[entry])
    assert ("label" in model.specs["serve_wav"]["outputs"]) == (entry == "named")
    reference = model.probabilities([clip_files["pcm16.wav"]])  # serve_wav, in the graph
    assert reference.shape == (1, 3) and np.isclose(reference.sum(), 1, atol=1e-5)
    for name in ("pcm24.wav", "pcm32.wav", "float.wav", "double.wav", "clip.flac"):
        np.testing.assert_allclose(model.probabilities([clip_files[name]]), reference, atol=1e-3, err_msg=name)
    # Lossy: near, not the same.
    np.testing.assert_allclose(model.probabilities([clip_files["clip.ogg"]]), reference, atol=0.05)
    # Bytes, and a mix of formats in one call, in order.
    mixed = model.probabilities([clip_files["float.wav"].read_bytes(), clip_files["pcm16.wav"], clip_files["clip.flac"]])
    np.testing.assert_allclose(mixed, np.repeat(reference, 3, axis=0), atol=1e-3)
    (result,) = model.predict([clip_files["clip.flac"]])
    assert result["label"] == LABELS[int(reference.argmax())]
    if entry == "named":
        out = model.outputs([clip_files["pcm16.wav"]])
        assert out["label"].tolist() == [LABELS[int(reference.argmax())].encode()]


def test_the_predictor_names_an_unreadable_file(toy_entries, tmp_path):
    from zoo.pretrained import load

    model = load(toy_entries["unnamed"])
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"fLaC but nothing after")
    with pytest.raises(DataError, match=r"broken\.flac: not a readable audio file \(WAV, FLAC, OGG or MP3; "):
        model.predict([bad])
    with pytest.raises(DataError, match=r"input 2: not a readable audio file"):
        model.predict([tf.audio.encode_wav(np.zeros((800, 1), "float32"), 8000).numpy(), b"junk"])
    with pytest.raises(DataError, match=r"missing\.ogg: no such file"):
        model.predict([tmp_path / "missing.ogg"])


def test_read_audio_downmixes_and_keeps_the_rate(tmp_path):
    x = tone(440, 22050, 0.2, channels=2) * np.array([1.0, 0.0], "float32")
    sf.write(tmp_path / "a.wav", x, 22050, subtype="FLOAT")
    clip = read_audio(tmp_path / "a.wav")
    assert (clip.rate, clip.channels, clip.format, clip.subtype) == (22050, 2, "wav", "FLOAT")
    np.testing.assert_allclose(clip.samples, x.mean(axis=1), atol=1e-7)
    sf.write(tmp_path / "b.wav", tone(440, 8000, 0.1), 8000, subtype="PCM_U8")  # 8-bit WAV
    clip = read_audio(tmp_path / "b.wav")
    assert clip.subtype == "PCM_U8"
    np.testing.assert_allclose(clip.samples, tone(440, 8000, 0.1), atol=1 / 128)
