"""Machine translation with a bidirectional LSTM encoder and an LSTM decoder with attention.

Trains a sequence-to-sequence model with teacher forcing on Tatoeba Spanish-English pairs
(`--pair spa-eng`, the data of TensorFlow's "NMT with attention" tutorial; 116,586 pairs split
90/5/5 by a hash of the source sentence) or Multi30k German-English (`--pair de-en`, its
official train / val / test_2016_flickr splits). WordPiece vocabularies are learned on the
training split only; sources are case-folded, targets keep their case. Reports sacreBLEU and
chrF on the test split with greedy and beam-search decoding, prints sample translations, draws
attention heatmaps, and exports a SavedModel whose `string[None]` signature tokenizes, encodes,
decodes (beam search in a `tf.while_loop`) and detokenizes in the graph.

    python -m tasks.text.translation --pair de-en            # Multi30k de->en (the `default` preset)
    python -m tasks.text.translation --pair spa-eng          # Tatoeba spa->eng
    python -m tasks.text.translation --pair de-en --preset fast --subset 5000   # minutes, for a try
    python -m tasks.text.translation --tsv pairs.tsv         # any source<TAB>target file
    python -m tasks.text.translation --tfds ted_hrlr_translate/pt_to_en
    python -m tuning.search text.translation --pair de-en --preset fast --max-epochs 6   # best val_bleu

`--data-dir DIR` or `ZOO_DATA_DIR` points at a directory holding `anki/spa-eng.tsv`
(english<TAB>spanish) and `multi30k/{train,val,test_2016_flickr}.{de,en}`. Killing a run and
starting the same command again resumes it; `--weights RUN/model.weights.h5 --epochs 0`
evaluates and exports a trained model again (its vocabularies are read from RUN).

Measured on the 2-core CPU (shared with other jobs; docs/translation.md):
`--pair de-en` reached 41.03 BLEU / 59.66 chrF on Multi30k test_2016_flickr with beam search
(39.77 / 58.86 greedy) after 12 epochs in 71 minutes; `--pair spa-eng --epochs 5
--batch-size 128` reached 46.72 BLEU / 61.44 chrF on the Tatoeba test split with beam search
(43.93 / 59.96 greedy) in 43 minutes.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path

from zoo.jsonutil import dumps_strict
from zoo.config import TrainConfig, option, parse_config
from zoo.data import subset_indices
from zoo.data.translation import DATASET_PAIRS, PAIRS
from zoo.errors import ZooError

TASK = "text.translation"


@dataclass
class Config(TrainConfig):
    data: typing.Optional[str] = option(None, "the corpus: a registered one (tatoeba: --pair spa-eng, multi30k: "
                                              "--pair de-en), a source<TAB>target file (as --tsv) or tfds:NAME "
                                              "(as --tfds); default: the corpus of --pair")
    pair: str = option("spa-eng", "language pair (source-target)", tuple(PAIRS))
    tsv: typing.Optional[str] = option(None, "train on this source<TAB>target file instead (split by source hash)")
    tfds: typing.Optional[str] = option(None, "train on this TFDS translation dataset instead (needs a network)")
    model: str = option("bahdanau_lstm", "registered seq2seq model (see zoo.list_models('seq2seq'))")
    model_kwargs: dict = option({}, "builder argument, repeatable: --model-arg units=256 --model-arg dropout=0.3")
    source_vocab_size: int = option(8000, "WordPiece vocabulary of the source (at most; learned on train)", ge=5)
    target_vocab_size: int = option(8000, "WordPiece vocabulary of the target (at most; learned on train)", ge=5)
    lowercase_source: bool = option(True, "case-fold source sentences")
    lowercase_target: bool = option(False, "case-fold target sentences (then references are compared lowercased too)")
    # At least 3: [START], a token, [END].
    max_source_tokens: int = option(64, "source subwords read, [START]/[END] included: longer training pairs are "
                                        "left out, longer inputs at test time and in the SavedModel are truncated",
                                   ge=3)
    max_target_tokens: int = option(64, "training pairs with longer targets are left out", ge=3)
    max_output_length: int = option(64, "decoding stops after this many tokens", ge=1)
    beam_width: int = option(4, "beam search width (1: greedy)", ge=1)
    length_penalty: float = option(0.6, "beam search length penalty alpha, GNMT's ((5 + len) / 6) ** alpha", ge=0)
    decode: str = option("beam", "decoding of the SavedModel's `serve` and of the headline test_bleu",
                         ("beam", "greedy"))
    eval_batch_size: int = option(64, "sentences a batch when translating the test set", ge=1)
    bleu_sentences: int = option(200, "tuning: validation pairs greedy-decoded after every epoch of a trial for its "
                                      "val_bleu objective", ge=1)
    samples: int = option(10, "sample translations printed and written to samples.txt", ge=0)
    attention_plots: int = option(4, "test sentences drawn as attention heatmaps", ge=0)
    validation_split: float = option(0.05, "TSV corpora: fraction of source sentences held out for validation", ge=0, lt=1)
    test_split: float = option(0.05, "TSV corpora: fraction of source sentences held out for testing", ge=0, lt=1)
    weights: typing.Optional[str] = option(None, "start from these .weights.h5 (with --epochs 0: evaluate and "
                                                 "export only); vocabularies are read from the same directory")

    def __post_init__(self):
        super().__post_init__()
        # --data, the recipes' flag, in the translation task's own terms.
        if self.data in DATASET_PAIRS:
            self.pair = DATASET_PAIRS[self.data]
        elif self.data and self.data.startswith("tfds:"):
            self.tfds = self.data.removeprefix("tfds:")
        elif self.data:
            self.tsv = self.data


_RECIPE = dict(optimizer="adam", learning_rate=2e-3, clipnorm=1.0, schedule="cosine", warmup_epochs=0.5,
               label_smoothing=0.1, batch_size=64)
PRESETS = {
    # 4-8 minutes an epoch on Multi30k on the 2-core CPU shared with other jobs (12 epochs: 71
    # minutes, 41.0 BLEU with beam search; 34.5 greedy after 5 epochs). Additive attention:
    # on the reversed toy language of the tests it learned the alignment faster than Luong's
    # (37 against 19 of 40 held-out sentences right after 25 epochs).
    "default": dict(_RECIPE, epochs=12, model="bahdanau_lstm",
                    model_kwargs={"embedding_dim": 256, "encoder_units": 256, "units": 256, "dropout": 0.3}),
    # A quick try: smaller vocabularies and model, few epochs (not measured to the end).
    "fast": dict(_RECIPE, epochs=4, source_vocab_size=4000, target_vocab_size=4000, model="bahdanau_lstm",
                 model_kwargs={"embedding_dim": 128, "encoder_units": 128, "units": 128, "dropout": 0.2}),
}


def check_config(cfg) -> None:
    from zoo.registry import list_models

    if cfg.model not in list_models("seq2seq"):
        raise ZooError(f"Unknown seq2seq model {cfg.model!r}. Known: {', '.join(list_models('seq2seq'))}.")
    reserved = sorted({"source_vocab_size", "target_vocab_size"} & set(cfg.model_kwargs))
    if reserved:
        raise ZooError(f"--model-arg {', '.join(reserved)}: set by the task (use --source-vocab-size and "
                       "--target-vocab-size).")


def vocabularies(cfg, train, run_dir=None):
    """The source and target tokenizers: read from beside `--weights` or from `run_dir` (a resumed
    run), else learned from `train`, the training split."""
    from zoo.subword import SubwordTokenizer, learn_vocabulary

    tokenizers = []
    for side, texts, size, lowercase in (("source", train.sources, cfg.source_vocab_size, cfg.lowercase_source),
                                         ("target", train.targets, cfg.target_vocab_size, cfg.lowercase_target)):
        name = f"{side}_vocab.txt"
        saved = [p / name for p in ([Path(cfg.weights).parent] if cfg.weights else []) + ([run_dir] if run_dir else [])]
        found = next((p for p in saved if p.exists() and (cfg.resume or cfg.weights)), None)
        if found:
            tokenizer = SubwordTokenizer.load(found, lowercase=lowercase)
            print(f"{side.capitalize()} vocabulary: {tokenizer.vocab_size} subwords from {found}.")
        elif cfg.weights:
            raise ZooError(f"--weights {cfg.weights}: no {name} beside it; the vocabularies must be the ones the "
                           "weights were trained with.")
        else:
            tokenizer = SubwordTokenizer(learn_vocabulary(texts, vocab_size=size, lowercase=lowercase),
                                         lowercase=lowercase)
            print(f"{side.capitalize()} vocabulary: {tokenizer.vocab_size} subwords learned from {len(texts)} "
                  "training sentences.")
        tokenizers.append(tokenizer)
    return tokenizers


@dataclass
class TranslationData:
    """What a run, or every trial of a search, starts from (picklable, no TensorFlow objects):
    the corpus, the training pairs (a random `--subset` of them), the subword vocabularies and
    the ids of the training and validation pairs."""

    corpus: typing.Any  # zoo.data.translation.ParallelCorpus
    train: typing.Any  # zoo.data.translation.ParallelSplit
    source_vocab: list
    target_vocab: list
    ids: dict  # "train", "validation" (if any) -> ([START] source [END] ids, [START] target [END] ids)
    subset: typing.Optional[float] = None  # the --subset `train` already is (None: all the training pairs)


def load_data(cfg, run_dir=None) -> TranslationData:
    """The corpus of `cfg`, its vocabularies (see `vocabularies`) and the training and validation
    pairs as subword ids."""
    from zoo.data.translation import load_pair
    from zoo.translate import tokenize_all

    corpus = load_pair(cfg.pair, cfg.data_dir, tsv=cfg.tsv, tfds_name=cfg.tfds, validation_split=cfg.validation_split,
                       test_split=cfg.test_split)
    train = corpus.train.sample(cfg.subset, cfg.seed) if cfg.subset else corpus.train
    source_tokenizer, target_tokenizer = vocabularies(cfg, train, run_dir)
    ids = {name: (tokenize_all(source_tokenizer, split.sources), tokenize_all(target_tokenizer, split.targets))
           for name, split in (("train", train), ("validation", corpus.validation)) if len(split)}
    return TranslationData(corpus, train, source_tokenizer.vocab, target_tokenizer.vocab, ids, cfg.subset)


def tokenizers(cfg, data: TranslationData):
    from zoo.subword import SubwordTokenizer

    return (SubwordTokenizer(data.source_vocab, lowercase=cfg.lowercase_source),
            SubwordTokenizer(data.target_vocab, lowercase=cfg.lowercase_target))


def references(cfg, targets) -> list:
    """Reference translations as BLEU compares them: lowercased if the model learned lowercased targets."""
    return [r.lower() for r in targets] if cfg.lowercase_target else list(targets)


def make_datasets(cfg, data: TranslationData):
    """Teacher-forcing pipelines of the training pairs (a random `cfg.subset`) and of the
    validation pairs (None if there are none); and the training pairs kept."""
    from zoo.translate import teacher_forcing_dataset

    limits = dict(batch_size=cfg.batch_size, max_source_tokens=cfg.max_source_tokens,
                  max_target_tokens=cfg.max_target_tokens)
    source_ids, target_ids = data.ids["train"]
    if cfg.subset and data.subset is None:  # a search tokenizes every pair; each trial takes its --subset here
        keep = subset_indices(len(source_ids), cfg.subset, cfg.seed)
        source_ids, target_ids = [source_ids[i] for i in keep], [target_ids[i] for i in keep]
    train_ds, n_train = teacher_forcing_dataset(source_ids, target_ids, shuffle=True, seed=cfg.seed, **limits)
    val_ds = teacher_forcing_dataset(*data.ids["validation"], **limits)[0] if "validation" in data.ids else None
    return train_ds, val_ds, n_train


def make_model(cfg, run, data: TranslationData, n_train: int):
    """The seq2seq model of `cfg` for `data`'s vocabularies, compiled."""
    from zoo.registry import build_model
    from zoo.translate import compile_translator, steps_per_epoch

    with run.strategy.scope():
        model = build_model(cfg.model, source_vocab_size=len(data.source_vocab),
                            target_vocab_size=len(data.target_vocab), **cfg.model_kwargs)
        compile_translator(model, cfg, run, steps_per_epoch=steps_per_epoch(n_train, cfg.batch_size))
    return model


def main(argv=None) -> dict:
    """Trains, evaluates and exports; returns the metrics written to `metrics.json`."""
    import numpy as np

    from zoo.evaluate import show_progress
    from zoo.plots import plot_attention, plot_history
    from zoo.train import export_metadata, finish_run, setup_run, train
    from zoo.translate import Translator, attention_examples, corpus_scores, export_translator, translate_corpus

    cfg = parse_config(Config, PRESETS, argv, prog="python -m tasks.text.translation",
                       description=__doc__.split("\n")[0])
    check_config(cfg)
    if cfg.output_dir is None:
        name = cfg.pair if not (cfg.tsv or cfg.tfds) else Path(cfg.tsv).stem if cfg.tsv else cfg.tfds.replace("/", "_")
        cfg = dataclasses.replace(cfg, output_dir=str(Path("runs") / f"{TASK}-{name}-{cfg.preset}"))
    run = setup_run(cfg, TASK, argv)
    if run.finished is not None:
        return run.finished

    # Data
    data = load_data(cfg, run.run_dir)
    corpus, train_split = data.corpus, data.train
    direction = f"{corpus.source_language}->{corpus.target_language}"
    print(f"Data: {corpus.source} ({direction}); {len(train_split)} train, {len(corpus.validation)} validation, "
          f"{len(corpus.test)} test pairs; split: {corpus.split}.")
    source_tokenizer, target_tokenizer = tokenizers(cfg, data)
    if run.chief:
        source_tokenizer.save(run.run_dir / "source_vocab.txt")
        target_tokenizer.save(run.run_dir / "target_vocab.txt")
    train_ds, val_ds, n_train = make_datasets(cfg, data)
    if n_train < len(train_split):
        print(f"Left out {len(train_split) - n_train} training pair(s) longer than {cfg.max_source_tokens} source or "
              f"{cfg.max_target_tokens} target subwords.")

    # Model
    model = make_model(cfg, run, data, n_train)

    # Train
    history, metrics = train(model, train_ds, val_ds, cfg, run, task=TASK, dataset=corpus.source)
    metrics.update(pair=direction, train_pairs=n_train)
    if history.get("loss"):
        metrics["seconds_per_epoch"] = round(metrics["train_time_s"] / len(history["loss"]), 1)

    # Evaluate: teacher-forced loss and token accuracy, then BLEU and chrF of real translations.
    if val_ds is not None:
        metrics["val_loss"], metrics["val_accuracy"] = (float(v) for v in model.evaluate(val_ds, verbose=0))
    translator = Translator(model, source_tokenizer, target_tokenizer, max_source_tokens=cfg.max_source_tokens,
                            max_output_length=cfg.max_output_length, beam_width=cfg.beam_width,
                            alpha=cfg.length_penalty)
    test = corpus.test
    test_references = references(cfg, test.targets)
    outputs = {}
    for method in ("greedy", "beam") if cfg.beam_width > 1 else ("greedy",):
        out = translate_corpus(translator, test.sources, method=method, batch_size=cfg.eval_batch_size,
                               progress=show_progress())
        scores = corpus_scores(out["translations"], test_references)
        outputs[method] = out
        metrics.update({f"test_bleu_{method}": scores["bleu"], f"test_chrf_{method}": scores["chrf"],
                        f"test_decode_seconds_{method}": round(out["seconds"], 1)})
        metrics["bleu_signature"], metrics["chrf_signature"] = scores["bleu_signature"], scores["chrf_signature"]
        print(f"Test {method}: BLEU {scores['bleu']:.2f}, chrF {scores['chrf']:.2f} ({len(test)} sentences, "
              f"{out['seconds']:.0f} s to translate).")
    method = cfg.decode if cfg.decode in outputs else "greedy"
    metrics.update(test_bleu=metrics[f"test_bleu_{method}"], test_chrf=metrics[f"test_chrf_{method}"],
                   test_decoding=method, test_sentences=len(test), test_truncated=outputs[method]["truncated"])
    if outputs[method]["truncated"]:
        print(f"Note: {outputs[method]['truncated']} test sources were longer than {cfg.max_source_tokens - 2} "
              "subwords and were truncated.")

    # Samples, translations and attention heatmaps.
    rng = np.random.default_rng(cfg.seed)
    picks = np.sort(rng.choice(len(test), size=min(cfg.samples, len(test)), replace=False))
    lines = []
    for i in picks:
        lines += [f"source:    {test.sources[i]}", f"reference: {test.targets[i]}"]
        lines += [f"{m + ':':10s} {outputs[m]['translations'][i]}" for m in outputs] + [""]
    print("Sample test translations:\n" + "\n".join(lines))
    if run.chief:
        (run.run_dir / "samples.txt").write_text("\n".join(lines), encoding="utf-8")
        for m, out in outputs.items():
            (run.run_dir / f"test_translations.{m}.txt").write_text("\n".join(out["translations"]) + "\n",
                                                                   encoding="utf-8")
        plot_history(history, run.run_dir / "learning_curves.png")
        for k, (src, out, weights) in enumerate(
                attention_examples(translator, [test.sources[i] for i in picks[:cfg.attention_plots]]), start=1):
            plot_attention(weights, src, out, run.run_dir / f"attention_{k}.png", title=f"{direction}, greedy")
        (run.run_dir / "metrics.json").write_text(dumps_strict(metrics, indent=2, default=str) + "\n")

    # Export
    if cfg.export and run.chief:
        path = export_translator(translator, run.run_dir / "saved_model", method=cfg.decode,
                                 weights_dtype=cfg.export_weights, metadata=export_metadata(
            run, metrics, task=TASK, pair=direction, dataset=corpus.source, split=corpus.split, model=cfg.model,
            model_kwargs=cfg.model_kwargs, lowercase_source=cfg.lowercase_source,
            lowercase_target=cfg.lowercase_target))
        print(f"SavedModel: {path}")
    return finish_run(run, metrics)


# Tuning: `python -m tuning.search text.translation` searches this space with the data, pipelines
# and model above (the hooks are described in tuning/search.py), for the best BLEU of greedy
# translations of a fixed sample of validation pairs (`--bleu-sentences`). The vocabularies
# (--source-vocab-size, --target-vocab-size) are the search's task flags, not searched: they are
# learned once, on the training split, for all the trials.

OBJECTIVE = ("val_bleu", "max")


def search_space(hp) -> dict:
    """Settings to search, as config overrides; the defaults are the `default` preset's."""
    return dict(
        model=hp.Choice("model", ["bahdanau_lstm", "luong_lstm"]),
        model_kwargs={"embedding_dim": hp.Choice("embedding_dim", [64, 128, 256, 512], default=256),
                      "encoder_units": hp.Choice("encoder_units", [64, 128, 256, 512], default=256),
                      "units": hp.Choice("units", [64, 128, 256, 512], default=256),
                      "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.3)},
        learning_rate=hp.Float("learning_rate", 5e-4, 1e-2, sampling="log", default=2e-3),
        label_smoothing=hp.Float("label_smoothing", 0.0, 0.3, step=0.1, default=0.1),
        batch_size=hp.Choice("batch_size", [32, 64, 128], default=64),
    )


def train_size(cfg, data) -> int:
    return len(data.train)


def validation_sample(cfg, data: TranslationData):
    """Up to `cfg.bleu_sentences` validation pairs, the same for every trial: sources and references."""
    import numpy as np

    validation = data.corpus.validation
    picks = np.sort(np.random.default_rng(cfg.seed).choice(len(validation), min(cfg.bleu_sentences, len(validation)),
                                                           replace=False))
    return validation.sources[picks], references(cfg, validation.targets[picks])


def build_trial(cfg, run, data):
    from zoo.train import Experiment
    from zoo.translate import BleuCallback

    train_ds, val_ds, n_train = make_datasets(cfg, data)
    bleu = BleuCallback(*validation_sample(cfg, data), *tokenizers(cfg, data), batch_size=cfg.eval_batch_size,
                        max_source_tokens=cfg.max_source_tokens, max_output_length=cfg.max_output_length)
    return Experiment(make_model(cfg, run, data, n_train), train_ds, val_ds, callbacks=(bleu,))


if __name__ == "__main__":
    from zoo.cli import run as _run

    _run(main)
