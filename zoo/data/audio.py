"""Speech data: Speech Commands, the Free Spoken Digit Dataset and Keras audio folders, as
in-memory float32 waveforms of a fixed length at one sample rate, split deterministically.

Splits never depend on the order files are listed in, nor on a random seed:

- Speech Commands and audio folders are split by speaker: the part of the file name before
  `_nohash_` is hashed (SHA-256) into a percentage, so all clips of a speaker land in the same
  split. Files without `_nohash_` (the `_silence_` noise clips) hash their file name.
  Not the reference recipe's hash (SHA-1 mod 2**27 in tensorflow/examples speech_commands
  `which_set`): the mirror is the v0.02 *test* release, which holds exactly the speakers that
  hash puts in "testing", so it would send every word clip to the test split.
- FSDD keeps its official test split (recording index 0-4: 5 of each speaker's 50 takes of
  each digit, 300 of the 3,000 clips) and takes validation from the other clips by the same
  hash of the file name.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import check_count, check_split_fractions, hash_split, list_class_folders, resolve_data_dir
from zoo.errors import DataError

SPEECH_COMMANDS_LABELS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_")
SILENCE = "_silence_"
FSDD_PATTERN = re.compile(r"^(\d)_([A-Za-z0-9]+)_(\d+)\.wav$", re.IGNORECASE)
FSDD_TAKES = 50  # recordings of each digit by each speaker


@dataclass
class AudioSplit:
    """Waveforms `[n, num_samples]` float32 in [-1, 1], int64 labels and the files they came from."""

    waveforms: np.ndarray
    labels: np.ndarray
    files: tuple

    def __len__(self):
        return len(self.labels)


@dataclass
class AudioData:
    """Train, validation and test splits of one corpus, at `sample_rate`, `num_samples` long."""

    train: AudioSplit
    validation: AudioSplit
    test: AudioSplit
    class_names: tuple
    sample_rate: int
    num_samples: int
    source: str

    def __post_init__(self):
        for name in ("train", "test"):
            if not len(getattr(self, name)):
                raise DataError(f"The {name} split of {self.source} is empty.")

    def noise(self, label=SILENCE):
        """The training clips of `label` (background noise for augmentation), or None."""
        if label not in self.class_names:
            return None
        clips = self.train.waveforms[self.train.labels == self.class_names.index(label)]
        return clips if len(clips) else None


# --- splits -----------------------------------------------------------------------------------


def speaker_of(path) -> str | None:
    """The speaker of a Speech Commands file (`<speaker>_nohash_<n>.wav`), else None."""
    name = Path(path).name
    return name.split("_nohash_")[0] if "_nohash_" in name else None


def split_by_speaker(files, validation_split: float, test_split: float) -> list[str]:
    """The split of each file: by speaker (all clips of a speaker together), by file name for
    files with no speaker in their name."""
    check_split_fractions(validation_split, test_split)
    return [hash_split(speaker_of(f) or Path(f).name, 100 * validation_split, 100 * test_split) for f in files]


def fsdd_split(files, validation_split: float) -> list[str]:
    """FSDD's official split (recording index 0-4 is test); validation is `validation_split` of
    the other clips, by a hash of the file name."""
    check_split_fractions(validation_split, 0.0)
    out = []
    for f in files:
        match = FSDD_PATTERN.match(Path(f).name)
        if not match:
            raise DataError(f"{f}: not an FSDD file name (<digit>_<speaker>_<index>.wav).")
        if int(match.group(3)) < 5:
            out.append("test")
        else:
            out.append("validation" if hash_split(Path(f).name, 100 * validation_split, 0) == "validation" else "train")
    return out


# --- listing ----------------------------------------------------------------------------------


def _wavs(folder: Path):
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")


def list_audio_folder(path) -> tuple[list[Path], np.ndarray, tuple]:
    """Files, labels and class names of a Keras audio folder: `path/<label>/*.wav`.

    Labels are the sorted subfolder names (as `keras.utils.audio_dataset_from_directory` does);
    `_background_noise_` (the long recordings of the full Speech Commands release) and hidden
    folders are skipped; a label folder without clips is an error naming it.
    """
    return list_class_folders(path, {".wav"}, kind="clips", layout="<label>/*.wav folders",
                              skip=("_background_noise_",))


def list_fsdd(path) -> tuple[list[Path], np.ndarray]:
    """Files and digit labels of FSDD's `recordings/` folder (`<digit>_<speaker>_<index>.wav`).

    Every speaker of FSDD records each digit `FSDD_TAKES` times (the total grew from release to
    release with the speakers: 3,000 clips by 6 in v1.0.10), so a speaker missing some of a
    digit's takes is an incomplete copy: an error naming the speaker's files of that digit.
    """
    path = Path(path)
    files = [f for f in _wavs(path) if FSDD_PATTERN.match(f.name)]
    if not files:
        raise DataError(f"{path}: no FSDD recordings (<digit>_<speaker>_<index>.wav).")
    takes = Counter(FSDD_PATTERN.match(f.name).group(2, 1) for f in files)
    for speaker in sorted({s for s, _ in takes}):
        for digit in map(str, range(10)):
            check_count(path / f"{digit}_{speaker}_*.wav", takes[speaker, digit], FSDD_TAKES, "recordings")
    return files, np.asarray([int(f.name[0]) for f in files], dtype="int64")


# --- decoding ---------------------------------------------------------------------------------


def decode_wav_files(files, *, sample_rate: int, num_samples: int) -> np.ndarray:
    """Reads WAV files into float32 `[len(files), num_samples]`: mono, at `sample_rate` (resampled
    in-graph if needed), padded or trimmed to `num_samples` (centred).

    Decoding runs in parallel in a `tf.data` pipeline. A file that is empty, corrupt, not 16-bit
    PCM or holds no samples raises `DataError` naming it.
    """
    import tensorflow as tf

    from zoo.audio import load_waveform

    out = np.empty((len(files), num_samples), dtype=np.float32)
    if not len(files):
        return out

    def load(f):
        return load_waveform(tf.io.read_file(f), sample_rate=sample_rate, num_samples=num_samples)

    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(256)
    i = 0  # clips decoded so far: the failing file is at or after this index
    try:
        for batch in ds.as_numpy_iterator():
            out[i:i + len(batch)] = batch
            i += len(batch)
    except tf.errors.OpError:
        # tf.data does not say which element failed: find it.
        raise _undecodable(files, i, sample_rate, num_samples) from None
    return out


def _undecodable(files, start, sample_rate, num_samples):
    import tensorflow as tf

    from zoo.audio import load_waveform

    for f in files[start:]:
        try:
            load_waveform(tf.io.read_file(str(f)), sample_rate=sample_rate, num_samples=num_samples)
        except tf.errors.OpError as e:
            size = Path(f).stat().st_size if Path(f).exists() else None
            reason = "empty file" if size == 0 else e.message.splitlines()[0][:200]
            return DataError(f"{f}: not a readable 16-bit PCM WAV file ({reason}).")
    return DataError(f"{files[start]}: not a readable WAV file.")


def _make_data(files, labels, splits, class_names, *, sample_rate, num_samples, source) -> AudioData:
    waveforms = decode_wav_files(files, sample_rate=sample_rate, num_samples=num_samples)
    splits = np.asarray(splits)
    parts = {}
    for name in ("train", "validation", "test"):
        mask = splits == name
        parts[name] = AudioSplit(waveforms[mask], np.asarray(labels)[mask],
                                 tuple(str(f) for f, m in zip(files, mask) if m))
    return AudioData(**parts, class_names=tuple(class_names), sample_rate=sample_rate, num_samples=num_samples,
                     source=source)


# --- corpora ----------------------------------------------------------------------------------


def load_audio_folder(path, *, sample_rate, num_samples, validation_split=0.1, test_split=0.1,
                      labels_required=None) -> AudioData:
    """A Keras audio folder (`path/<label>/*.wav`) split by speaker (see `split_by_speaker`).

    Args:
        labels_required: if given, the label folders must be exactly these (in any order).
    """
    files, labels, names = list_audio_folder(path)
    if labels_required is not None and set(names) != set(labels_required):
        missing = sorted(set(labels_required) - set(names))
        extra = sorted(set(names) - set(labels_required))
        raise DataError(f"{path}: expected the label folders {', '.join(labels_required)}; "
                        f"missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'}.")
    splits = split_by_speaker(files, validation_split, test_split)
    return _make_data(files, labels, splits, names, sample_rate=sample_rate, num_samples=num_samples, source=str(path))


def load_speech_commands(data_dir=None, *, sample_rate=16000, num_samples=16000, validation_split=0.1,
                         test_split=0.1) -> AudioData:
    """Speech Commands, 12 labels, split 80/10/10 by speaker.

    Looks in `data_dir` (or `ZOO_DATA_DIR`) for `speech_commands/<label>/*.wav`, else treats the
    directory itself as an audio folder (any labels, `_silence_` clips are used as background
    noise if there are any). Without a directory, reads TFDS `speech_commands` and its own splits.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        return _tfds_speech_commands(sample_rate=sample_rate, num_samples=num_samples)
    if (root / "speech_commands").is_dir():
        return load_audio_folder(root / "speech_commands", sample_rate=sample_rate, num_samples=num_samples,
                                 validation_split=validation_split, test_split=test_split,
                                 labels_required=SPEECH_COMMANDS_LABELS)
    return load_audio_folder(root, sample_rate=sample_rate, num_samples=num_samples,
                             validation_split=validation_split, test_split=test_split)


def load_fsdd(data_dir=None, *, sample_rate=8000, num_samples=8000, validation_split=0.1) -> AudioData:
    """The Free Spoken Digit Dataset with its official test split (index 0-4: 300 of the 3,000 clips).

    Looks in `data_dir` (or `ZOO_DATA_DIR`) for `fsdd/recordings/`, `recordings/` or the
    recordings themselves; a directory of label folders instead is read as an audio folder.
    Without a directory, reads TFDS `spoken_digit`.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        return _tfds_spoken_digit(sample_rate=sample_rate, num_samples=num_samples, validation_split=validation_split)
    for path in (root / "fsdd" / "recordings", root / "recordings", root):
        if path.is_dir() and any(FSDD_PATTERN.match(p.name) for p in path.iterdir()):
            files, labels = list_fsdd(path)
            return _make_data(files, labels, fsdd_split(files, validation_split), [str(d) for d in range(10)],
                              sample_rate=sample_rate, num_samples=num_samples, source=str(path))
    if any(p.is_dir() and _wavs(p) for p in root.iterdir()):
        return load_audio_folder(root, sample_rate=sample_rate, num_samples=num_samples,
                                 validation_split=validation_split, test_split=0.1)
    raise DataError(f"No FSDD found in {root}: expected fsdd/recordings/<digit>_<speaker>_<index>.wav "
                    "or <label>/*.wav folders.")


# --- TFDS (online) ----------------------------------------------------------------------------


def _tfds_splits(name, splits, *, sample_rate, num_samples, native_rate, with_names=False):
    """Whole TFDS audio splits as fixed-length float32 arrays (resampled if needed)."""
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds

        from zoo.audio import fix_length, resample

        datasets, info = tfds.load(name, split=list(splits), with_info=True)
        out = []
        for ds in datasets:
            def prepare(ex):
                x = tf.cast(ex["audio"], tf.float32) / 32768.0
                if native_rate != sample_rate:
                    x = resample(x, native_rate, sample_rate, length=num_samples)
                return fix_length(x, num_samples), ex["label"], ex.get("audio/filename", tf.constant(""))

            xs, ys, names = [], [], []
            for x, y, n in ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(512).as_numpy_iterator():
                xs.append(x)
                ys.append(y)
                names += [v.decode() for v in n]
            out.append((np.concatenate(xs), np.concatenate(ys).astype("int64"), tuple(names)))
        return out, tuple(info.features["label"].names)
    except Exception as e:  # TFDS raises many kinds of errors when offline
        raise DataError(
            f"Could not load {name!r} from TensorFlow Datasets ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            "Offline, point --data-dir or ZOO_DATA_DIR at a local copy."
        ) from e


def _tfds_speech_commands(*, sample_rate, num_samples):
    parts, names = _tfds_splits("speech_commands", ["train", "validation", "test"], sample_rate=sample_rate,
                                num_samples=num_samples, native_rate=16000)
    splits = [AudioSplit(*p) for p in parts]
    return AudioData(*splits, class_names=names, sample_rate=sample_rate, num_samples=num_samples,
                     source="tfds:speech_commands")


def _tfds_spoken_digit(*, sample_rate, num_samples, validation_split):
    ((x, y, files),), names = _tfds_splits("spoken_digit", ["train"], sample_rate=sample_rate,
                                           num_samples=num_samples, native_rate=8000)
    splits = np.asarray(fsdd_split([Path(f).name for f in files], validation_split))
    parts = [AudioSplit(x[splits == s], y[splits == s], tuple(f for f, k in zip(files, splits) if k == s))
             for s in ("train", "validation", "test")]
    return AudioData(*parts, class_names=names, sample_rate=sample_rate, num_samples=num_samples,
                     source="tfds:spoken_digit")
