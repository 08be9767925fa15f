"""Parallel corpora for translation: sentence-pair TSV files (Tatoeba/Anki), Multi30k line files,
and TFDS translation datasets by name.

    PAIRS                 the language pairs a task knows, with their corpus on disk
    read_tsv              source<TAB>target lines; a malformed line is an error naming file and line
    split_by_source       a deterministic split by a hash of the source sentence
    load_tsv, load_multi30k, load_tfds_translation, load_pair
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import check_count, check_split_fractions, hash_split, resolve_data_dir, subset_indices
from zoo.errors import DataError

# name -> (corpus, source language, target language). The Anki file is english<TAB>spanish.
PAIRS = {
    "spa-eng": ("anki", "spa", "eng"),
    "eng-spa": ("anki", "eng", "spa"),
    "de-en": ("multi30k", "de", "en"),
    "en-de": ("multi30k", "en", "de"),
}
# The registered translation datasets (zoo.datasets) and the language pair each is read as.
DATASET_PAIRS = {"tatoeba": "spa-eng", "multi30k": "de-en"}
ANKI_FILE = Path("anki") / "spa-eng.tsv"
ANKI_COLUMNS = {"eng": 0, "spa": 1}
MULTI30K_SPLITS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}
MULTI30K_SIZES = {"train": 29_000, "validation": 1_014, "test": 1_000}  # sentences, in every language


@dataclass
class ParallelSplit:
    """Sentence pairs: `sources[i]` translates to `targets[i]` (numpy arrays of str)."""

    sources: np.ndarray
    targets: np.ndarray

    def __len__(self):
        return len(self.sources)

    def sample(self, subset, seed: int = 0) -> "ParallelSplit":
        """A `--subset` of the pairs (see `zoo.data.subset_indices`), in their order."""
        keep = subset_indices(len(self), subset, seed)
        return ParallelSplit(self.sources[keep], self.targets[keep])


@dataclass
class ParallelCorpus:
    """The three splits of a corpus, its languages and where it came from."""

    train: ParallelSplit
    validation: ParallelSplit
    test: ParallelSplit
    source_language: str
    target_language: str
    source: str  # a path or tfds:<name>
    split: str  # how the splits were made, for the logs and the model card

    def __post_init__(self):
        for name in ("train", "test"):
            if not len(getattr(self, name)):
                raise DataError(f"The {name} split of {self.source} is empty.")


def _split(pairs) -> ParallelSplit:
    pairs = list(pairs)
    sources = np.array([s for s, _ in pairs], dtype=object)
    targets = np.array([t for _, t in pairs], dtype=object)
    return ParallelSplit(sources, targets)


def read_tsv(path, *, source_column: int = 0, target_column: int = 1) -> list[tuple[str, str]]:
    """The (source, target) pairs of a tab-separated file, one pair a line.

    Columns beyond the two used (the Anki export's attribution) are ignored; blank lines are
    skipped. A line that is not UTF-8, has too few columns or an empty sentence is a
    `DataError` naming the file and the line number.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read the sentence pairs ({e.strerror}).") from e
    pairs = []
    needed = max(source_column, target_column) + 1
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}, line {number}: not UTF-8 ({e.reason} at byte {e.start}).") from e
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < needed:
            raise DataError(f"{path}, line {number}: expected {needed} tab-separated columns (source<TAB>target), "
                            f"found {len(fields)}: {line[:80]!r}")
        source, target = fields[source_column].strip(), fields[target_column].strip()
        if not source or not target:
            raise DataError(f"{path}, line {number}: empty {'source' if not source else 'target'} sentence: "
                            f"{line[:80]!r}")
        pairs.append((source, target))
    if not pairs:
        raise DataError(f"{path}: no sentence pairs.")
    return pairs


def split_by_source(sources, validation_split: float, test_split: float) -> list[str]:
    """The split of each pair by a hash of its source sentence: stable across runs and machines,
    and every translation of one source sentence lands in the same split."""
    check_split_fractions(validation_split, test_split)
    return [hash_split(s, 100 * validation_split, 100 * test_split) for s in sources]


def load_tsv(path, *, source_language="src", target_language="tgt", source_column=0, target_column=1,
             validation_split=0.05, test_split=0.05) -> ParallelCorpus:
    """A sentence-pair TSV split by `split_by_source`."""
    pairs = read_tsv(path, source_column=source_column, target_column=target_column)
    splits = split_by_source([s for s, _ in pairs], validation_split, test_split)
    parts = {name: _split([p for p, s in zip(pairs, splits) if s == name]) for name in ("train", "validation", "test")}
    return ParallelCorpus(**parts, source_language=source_language, target_language=target_language, source=str(path),
                          split=f"hash of the source sentence: {100 * (1 - validation_split - test_split):g}% train, "
                                f"{100 * validation_split:g}% validation, {100 * test_split:g}% test")


def read_lines(path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 ({e.reason} at byte {e.start}).") from e


def load_multi30k(path, *, source_language="de", target_language="en") -> ParallelCorpus:
    """Multi30k (task 1) from `path/{train,val,test_2016_flickr}.{de,en}`: its official splits."""
    path = Path(path)
    parts = {}
    for name, stem in MULTI30K_SPLITS.items():
        files = [path / f"{stem}.{lang}" for lang in (source_language, target_language)]
        sources, targets = (read_lines(f) for f in files)
        if len(sources) != len(targets):
            raise DataError(f"{files[0]} has {len(sources)} lines but {files[1]} has {len(targets)}: "
                            "parallel files must have one sentence a line, in the same order.")
        for number, (s, t) in enumerate(zip(sources, targets), start=1):
            if not s.strip() or not t.strip():
                raise DataError(f"{files[0] if not s.strip() else files[1]}, line {number}: empty sentence.")
        check_count(files[0], len(sources), MULTI30K_SIZES[name], "sentences")
        parts[name] = _split(zip(sources, targets))
    return ParallelCorpus(**parts, source_language=source_language, target_language=target_language, source=str(path),
                          split="official (train, val, test_2016_flickr)")


def load_tfds_translation(name: str, *, validation_split=0.05, test_split=0.05) -> ParallelCorpus:
    """A TFDS translation dataset with supervised keys (source, target), such as
    `ted_hrlr_translate/pt_to_en`. Its own splits are used; a dataset without a validation or
    test split gets one by `split_by_source` from its training split."""
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(name)
        builder.download_and_prepare()
        available = set(builder.info.splits)
        keys = builder.info.supervised_keys
        data = {s: tfds.as_numpy(builder.as_dataset(split=s, as_supervised=True, batch_size=-1)) for s in available}
    except Exception as e:  # TFDS raises many kinds of errors when offline
        raise DataError(f"Could not load {name!r} from TensorFlow Datasets ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else ''}). Offline, use --data-dir or --tsv.") from e

    def decode(arrays):
        return [(s.decode("utf-8"), t.decode("utf-8")) for s, t in zip(*arrays)]

    if "train" not in data:
        raise DataError(f"tfds:{name} has no train split (it has {', '.join(sorted(available))}).")
    train = decode(data["train"])
    parts = {"train": train}
    missing = [s for s in ("validation", "test") if s not in data]
    if missing:
        splits = split_by_source([s for s, _ in train], validation_split if "validation" in missing else 0,
                                 test_split if "test" in missing else 0)
        parts = {k: [p for p, s in zip(train, splits) if s == k] for k in ("train", *missing)}
    for s in ("validation", "test"):
        if s in data:
            parts[s] = decode(data[s])
    src, tgt = keys if keys and len(keys) == 2 else ("source", "target")
    return ParallelCorpus(**{k: _split(v) for k, v in parts.items()}, source_language=src, target_language=tgt,
                          source=f"tfds:{name}",
                          split="TFDS splits" + (f"; {', '.join(missing)} hashed from train" if missing else ""))


def load_pair(pair: str | None = "spa-eng", data_dir=None, *, tsv=None, tfds_name=None, validation_split=0.05,
              test_split=0.05) -> ParallelCorpus:
    """The corpus of a task: `tsv` (a source<TAB>target file) if given, else `tfds_name` if
    given, else the corpus of `pair` under `data_dir` (or `ZOO_DATA_DIR`): `anki/spa-eng.tsv`
    (english<TAB>spanish; spa-eng reads it right to left) or `multi30k/`."""
    if tsv:
        src, tgt = pair.split("-") if pair else ("src", "tgt")
        return load_tsv(tsv, source_language=src, target_language=tgt, validation_split=validation_split,
                        test_split=test_split)
    if tfds_name:
        return load_tfds_translation(tfds_name, validation_split=validation_split, test_split=test_split)
    if pair not in PAIRS:
        raise DataError(f"Unknown language pair {pair!r}. Known pairs: {', '.join(PAIRS)} (or give --tsv or --tfds).")
    corpus, src, tgt = PAIRS[pair]
    root = resolve_data_dir(data_dir)
    if root is None:
        raise DataError(f"{pair}: no data directory. Point --data-dir or ZOO_DATA_DIR at a directory holding "
                        f"{ANKI_FILE if corpus == 'anki' else 'multi30k/'}, or pass --tsv FILE or --tfds NAME "
                        "(for example ted_hrlr_translate/pt_to_en).")
    if corpus == "anki":
        path = root / ANKI_FILE if (root / ANKI_FILE).is_file() else root / ANKI_FILE.name
        if not path.is_file():
            raise DataError(f"{root}: no {ANKI_FILE} (english<TAB>spanish sentence pairs).")
        return load_tsv(path, source_language=src, target_language=tgt, source_column=ANKI_COLUMNS[src],
                        target_column=ANKI_COLUMNS[tgt], validation_split=validation_split, test_split=test_split)
    path = root / "multi30k" if (root / "multi30k").is_dir() else root
    return load_multi30k(path, source_language=src, target_language=tgt)
