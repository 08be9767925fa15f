"""Speech data: Speech Commands, the Free Spoken Digit Dataset and Keras audio folders, as
in-memory float32 waveforms of a fixed length at one sample rate, split deterministically.

Splits never depend on the order files are listed in, nor on a random seed:

- Speech Commands and audio folders are split by speaker: the part of the file name before
  `_nohash_` is hashed (SHA-256) into a percentage, so all clips of a speaker land in the same
  split. Files without `_nohash_` (the `_silence_` noise clips) hash their file name.
  Not the reference recipe's hash (SHA-1 mod 2**27 in tensorflow/examples speech_commands
  `which_set`): the mirror is the v0.02 *test* release, which holds exactly the speakers that
  hash puts in "testing", so it would send every word clip to the test split.
- Any other folder of clips (`load_audio_dataset`) is split by speaker when its file names carry
  one, else stratified by label with a seed (`zoo.data.stratified_split`).
- FSDD keeps its official test split (recording index 0-4: 5 of each speaker's 50 takes of
  each digit, 300 of the 3,000 clips) and takes validation from the other clips by the same
  hash of the file name.

Files are read with `soundfile` (`zoo.audio.read_audio`): WAV of any sample width, FLAC and OGG,
any channel count (downmixed) and any rate from `zoo.audio.MIN_SAMPLE_RATE` to
`MAX_SAMPLE_RATE` (resampled with `zoo.audio.resample`, as the exported models do in the graph),
padded or centre-trimmed to the clip length. What was converted is listed in `AudioData.notes`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import (
    Split, Splits, check_count, check_split_fractions, hash_split, list_class_folders, make_splits, resolve_data_dir,
    stratified_split,
)
from zoo.errors import DataError

SPEECH_COMMANDS_LABELS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_")
SILENCE = "_silence_"
FSDD_PATTERN = re.compile(r"^(\d)_([A-Za-z0-9]+)_(\d+)\.wav$", re.IGNORECASE)
FSDD_TAKES = 50  # recordings of each digit by each speaker
# The clips a folder is listed for (`zoo.audio.read_audio` decodes them; libsndfile reads more).
# What libsndfile (through soundfile) decodes; MP3 since libsndfile 1.1.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MAX_CLIP_SECONDS = 10.0  # the most `load_audio_dataset` picks by itself; longer clips are centre-trimmed


@dataclass
class AudioSplit(Split):
    """A split of clips: `x` (also `waveforms`) float32 `[n, num_samples]` in [-1, 1], int64
    `labels` and the files they came from."""

    @property
    def waveforms(self) -> np.ndarray:
        return self.x


@dataclass
class AudioData(Splits):
    """`Splits` of kind "audio": clips at `spec["sample_rate"]`, `spec["num_samples"]` long.

    Plain `Split`s given as splits become `AudioSplit`s.
    """

    def __post_init__(self):
        for name in ("train", "validation", "test"):
            split = getattr(self, name)
            if not isinstance(split, AudioSplit):
                setattr(self, name, AudioSplit(split.x, split.labels, split.files))
        super().__post_init__()
        if self.kind != "audio" or not {"sample_rate", "num_samples"} <= set(self.spec):
            raise ValueError(f"AudioData needs kind='audio' and a spec with sample_rate and num_samples. "
                             f"Received: kind={self.kind!r}, spec={self.spec!r}")

    @property
    def sample_rate(self) -> int:
        return int(self.spec["sample_rate"])

    @property
    def num_samples(self) -> int:
        return int(self.spec["num_samples"])

    def noise(self, label=SILENCE):
        """The training clips of `label` (background noise for augmentation), or None."""
        if label not in self.class_names:
            return None
        clips = self.train.waveforms[self.train.labels == self.class_names.index(label)]
        return clips if len(clips) else None


def audio_spec(sample_rate: int, num_samples: int) -> dict:
    return {"sample_rate": int(sample_rate), "num_samples": int(num_samples)}


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
    """Files, labels and class names of a Keras audio folder: `path/<label>/*.{wav,flac,ogg}`.

    Labels are the sorted subfolder names (as `keras.utils.audio_dataset_from_directory` does);
    `_background_noise_` (the long recordings of the full Speech Commands release) and hidden
    folders are skipped; a label folder without clips is an error naming it.
    """
    return list_class_folders(path, set(AUDIO_SUFFIXES), kind="clips", layout="<label>/*.wav (.flac, .ogg, .mp3) folders",
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


def decode_audio_files(files, *, sample_rate: int, num_samples: int) -> tuple[np.ndarray, list[str]]:
    """Reads audio files into float32 `[len(files), num_samples]`, and says what it converted.

    Each file is decoded with `soundfile` (`zoo.audio.read_audio`: WAV of any sample width,
    FLAC, OGG), downmixed to mono, resampled to `sample_rate` if its rate differs and padded or
    trimmed, centred, to `num_samples` (`zoo.audio.fit_clip`). 16-bit PCM WAV files give the same
    samples as the graph's `tf.audio.decode_wav` (x / 32768), in a third less time than a
    `tf.data` pipeline of it.

    Args:
        files: the paths, in the order of the rows returned.
        sample_rate: the rate of the waveforms returned, in Hz.
        num_samples: their length.

    Returns:
        The waveforms and the notes (`audio_notes`): rates, channel counts, formats, clips
        trimmed or padded.

    Raises:
        DataError naming the file: empty, undecodable, no samples, a rate outside
        [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE].
    """
    from zoo.audio import fit_clip, read_audio, resampled_length

    out = np.empty((len(files), num_samples), dtype=np.float32)
    seen = []
    for i, f in enumerate(files):
        clip = read_audio(f)
        out[i] = fit_clip(clip.samples, clip.rate, sample_rate=sample_rate, num_samples=num_samples)
        seen.append((clip.rate, clip.channels, clip.format, clip.subtype,
                     resampled_length(len(clip.samples), clip.rate, sample_rate)))
    return out, audio_notes(seen, sample_rate=sample_rate, num_samples=num_samples)


def decode_wav_files(files, *, sample_rate: int, num_samples: int) -> np.ndarray:
    """The waveforms of `decode_audio_files`, without its notes."""
    return decode_audio_files(files, sample_rate=sample_rate, num_samples=num_samples)[0]


def audio_notes(seen, *, sample_rate: int, num_samples: int) -> list[str]:
    """What decoding converted, one line each, for the run's summary: "rates: 8000 Hz x 120,
    44100 Hz x 30 (resampled to 16000 Hz)", "channels: 2 x 30 (downmixed to mono)", "14 clips
    longer than 1 s centre-trimmed", "formats: wav 140, flac 10", "sample types: PCM_16 150".

    Args:
        seen: for each clip, (rate, channels, format, subtype, length at `sample_rate`).
    """
    if not seen:
        return []
    rates, channels, formats, subtypes, lengths = zip(*seen)

    def counts(values, unit=""):
        return ", ".join(f"{v}{unit} x {n:,}" for v, n in sorted(Counter(values).items()))

    notes = [f"rates: {counts(rates, ' Hz')}"
             + (f" (resampled to {sample_rate} Hz)" if set(rates) != {sample_rate} else "")]
    if set(channels) != {1}:
        notes.append(f"channels: {counts(channels)} (downmixed to mono)")
    seconds = f"{num_samples / sample_rate:g} s"
    longer, shorter = sum(n > num_samples for n in lengths), sum(n < num_samples for n in lengths)
    if longer:
        notes.append(f"{longer:,} clips longer than {seconds} centre-trimmed")
    if shorter:
        notes.append(f"{shorter:,} clips shorter than {seconds} padded with silence (centred)")
    notes.append("formats: " + ", ".join(f"{k} {n:,}" for k, n in Counter(formats).most_common()))
    notes.append("sample types: " + ", ".join(f"{k} {n:,}" for k, n in Counter(subtypes).most_common()))
    return notes


def _make_data(files, labels, splits, class_names, *, sample_rate, num_samples, source, notes=()) -> AudioData:
    waveforms, decoded = decode_audio_files(files, sample_rate=sample_rate, num_samples=num_samples)
    data = make_splits("audio", waveforms, labels, splits, class_names, source, files=[str(f) for f in files],
                       spec=audio_spec(sample_rate, num_samples), notes=[*notes, *decoded])
    return AudioData(**vars(data))


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


def load_audio_dataset(path, *, sample_rate=16000, clip_seconds=None, validation_split=0.1, test_split=0.1,
                       seed=0) -> AudioData:
    """Any folder of labelled clips, as `AudioData` at `sample_rate`, `clip_seconds` long.

    Layouts (Keras' `audio_dataset_from_directory`): `path/<label>/*.{wav,flac,ogg}`, split into
    train, validation and test here; or `path/train/<label>/...` with `path/test/<label>/...`
    (and optionally `path/validation/<label>/...`), where only the splits without a folder are
    drawn from train. Labels are the sorted folder names (of train/); `_background_noise_` and
    hidden folders are skipped. The split is by speaker when file names carry one
    (`<speaker>_nohash_<n>.wav`, as Speech Commands names them; see `split_by_speaker`), else
    stratified by label and drawn with `seed` (`zoo.data.stratified_split`).

    Clips of any format, channel count and rate are converted (`decode_audio_files`); `notes`
    say what was converted and how many clips were padded or centre-trimmed.

    Args:
        path: the folder.
        sample_rate: the rate of the waveforms, in Hz (clips at other rates are resampled).
        clip_seconds: the clip length; shorter clips are padded with silence and longer ones
            centre-trimmed (both centred). None: the 95th percentile of the clips' durations
            (read from the file headers), rounded up to 0.1 s, at most `MAX_CLIP_SECONDS`.
        validation_split, test_split: the fractions drawn for the splits without a folder.
        seed: the draw of a stratified split.

    Raises:
        DataError naming the file or folder: a missing folder, a label folder with no clips, one
        label only, a label in test/ or validation/ that is not in train/, or a clip that is
        empty, undecodable, without samples or at a rate outside the accepted range.
    """
    path = Path(path)
    check_split_fractions(validation_split, test_split)
    if not path.is_dir():
        raise DataError(f"{path}: no such folder; expected <label>/*.wav folders (or train/ and test/ with them).")
    split_dirs = {s: path / s for s in ("train", "validation", "test") if (path / s).is_dir()}
    if split_dirs and "train" not in split_dirs:
        raise DataError(f"{path}: {', '.join(f'{s}/' for s in split_dirs)} without train/; expected train/<label>/ "
                        "beside them, or <label>/ folders alone.")
    top = split_dirs.get("train", path)
    files, labels, names = list_audio_folder(top)
    if len(names) < 2:
        raise DataError(f"{top}: one label folder ({names[0]}); a classifier needs two or more.")
    assignment = [None] * len(files)
    for split in ("validation", "test"):
        if split not in split_dirs:
            continue
        more, their_labels, their_names = list_audio_folder(split_dirs[split])
        unknown = [n for n in their_names if n not in names]
        if unknown:
            raise DataError(f"{split_dirs[split] / unknown[0]}: label {unknown[0]!r} is not in {top} "
                            f"(its labels: {', '.join(names)}).")
        files += more
        labels = np.concatenate([labels, [names.index(their_names[i]) for i in their_labels]]).astype("int64")
        assignment += [split] * len(more)
    # The splits that have no folder are drawn from train's clips.
    drawn = [i for i, a in enumerate(assignment) if a is None]
    fractions = (0.0 if "validation" in split_dirs else validation_split, 0.0 if "test" in split_dirs else test_split)
    by_speaker = any(speaker_of(files[i]) for i in drawn)
    parts = (split_by_speaker([files[i] for i in drawn], *fractions) if by_speaker
             else stratified_split(labels[drawn], *fractions, seed=seed))
    for i, part in zip(drawn, parts):
        assignment[i] = str(part)
    notes = [f"split: {'by speaker (<speaker>_nohash_<n> file names)' if by_speaker else f'stratified by label, seed {seed}'}"
             + (f"; from the folders {', '.join(f'{s}/' for s in split_dirs)}" if split_dirs else "")]
    if clip_seconds is None:
        clip_seconds, note = auto_clip_seconds(files)
        notes.append(note)
    if not (isinstance(clip_seconds, (int, float)) and clip_seconds > 0):
        raise ValueError(f"clip_seconds must be a positive number of seconds. Received: {clip_seconds!r}")
    num_samples = max(1, int(round(sample_rate * clip_seconds)))
    return _make_data(files, labels, assignment, names, sample_rate=sample_rate, num_samples=num_samples,
                      source=str(path), notes=notes)


def clip_duration(path) -> float:
    """A clip's duration in seconds, from its header (`soundfile.info`); a DataError naming the
    file if the header does not read or declares a rate outside the accepted range."""
    import soundfile as sf

    from zoo.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, read_audio

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        info = None
    if info is None or not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE or info.frames <= 0:
        read_audio(path)  # raises the reason, named
        raise DataError(f"{path}: not a readable audio file (WAV, FLAC, OGG or MP3).")
    return info.frames / info.samplerate


def auto_clip_seconds(files) -> tuple[float, str]:
    """The clip length `load_audio_dataset` picks, and a note saying how: the 95th percentile of
    the clips' durations rounded up to 0.1 s (at least 0.1 s), at most `MAX_CLIP_SECONDS`."""
    p95 = float(np.percentile([clip_duration(f) for f in files], 95))
    # round() first: 1.2 s measured as 1.2000000000000002 stays 1.2.
    seconds = min(max(math.ceil(round(p95 * 10, 6)) / 10, 0.1), MAX_CLIP_SECONDS)
    return seconds, (f"clip length {seconds:g} s: the 95th percentile of the clips' durations ({p95:.3f} s), "
                     f"rounded up to 0.1 s, at most {MAX_CLIP_SECONDS:g} s")


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
    return AudioData("audio", *splits, class_names=names, source="tfds:speech_commands",
                     spec=audio_spec(sample_rate, num_samples))


def _tfds_spoken_digit(*, sample_rate, num_samples, validation_split):
    ((x, y, files),), names = _tfds_splits("spoken_digit", ["train"], sample_rate=sample_rate,
                                           num_samples=num_samples, native_rate=8000)
    splits = np.asarray(fsdd_split([Path(f).name for f in files], validation_split))
    parts = [AudioSplit(x[splits == s], y[splits == s], tuple(f for f, k in zip(files, splits) if k == s))
             for s in ("train", "validation", "test")]
    return AudioData("audio", *parts, class_names=names, source="tfds:spoken_digit",
                     spec=audio_spec(sample_rate, num_samples))
