"""Recipes: one per input kind, and the one training flow they share.

A recipe knows an input kind (images, texts, audio clips): how its data becomes tf.data
pipelines, which registered models take it, how the trained model is served (the SavedModel's
signatures), what the model card records of its preprocessing, and how a `zoo.load` predictor
reads its inputs. The flow is written once, here:

    config -> run directory -> data (zoo.datasets) -> model -> fit -> evaluate -> report -> export -> card

A task module is then a dataset name, presets and, where needed, a task-specific report:

    from zoo.recipes.image import ImageConfig, IMAGE
    PRESETS = {...}
    def main(argv=None):
        return IMAGE.main(argv, Config, PRESETS, task="vision.cifar10", doc=__doc__)
    load_data, train_size, build_trial, search_space = IMAGE.tuning_hooks()

The recipes register under their kind in `RECIPES`; `zoo.pretrained` looks the predictor of a
model card up there.
"""

from __future__ import annotations

import numpy as np

from zoo.errors import ZooError

RECIPES: dict = {}


def register_recipe(recipe):
    RECIPES[recipe.kind] = recipe
    return recipe


def get_recipe(kind: str):
    import zoo.recipes.audio  # noqa: F401  (the recipes register on import)
    import zoo.recipes.image  # noqa: F401
    import zoo.recipes.text  # noqa: F401

    if kind not in RECIPES:
        raise ZooError(f"No recipe for {kind!r} data. Known: {', '.join(sorted(RECIPES))}.")
    return RECIPES[kind]


class Recipe:
    """What a recipe defines; `train_classifier` and `main` are the flow that uses it.

    Attributes:
        kind: the input kind ("image"), as `zoo.datasets` registers datasets.
        family: the model registry's family ("vision"): `--model` must be one of its builders.
        noun: what an example is called in messages ("images").
        predictor: the `kind` of the `zoo.pretrained` predictor of its SavedModels.
        reserved: builder arguments the recipe sets from the data (not `--model-arg`).
        reserved_hint: the flags that set them instead, for the error message.
    """

    kind = ""
    family = ""
    noun = "examples"
    predictor = ""
    reserved = ("num_classes",)
    reserved_hint = ""

    # --- hooks a recipe defines ---------------------------------------------------------------

    def load_data(self, cfg):
        """What the run (or every trial of a search) starts from: by default the `Splits` of
        `cfg.data` from the registry."""
        from zoo.datasets import load_dataset

        return load_dataset(cfg.data, self.kind, cfg)

    def splits(self, data):
        """What `load_data` returned, as far as the flow needs it: `source`, `class_names` and
        `notes` (a `Splits` by default)."""
        return data

    def counts(self, data) -> dict:
        """The examples of each split of the data, before `--subset`."""
        return {s: len(getattr(data, s)) for s in ("train", "validation", "test")}

    def train_size(self, cfg, data) -> int:
        """Training examples before `cfg.subset` (the ones `--subset` samples)."""
        return len(data.train)

    def datasets(self, cfg, data) -> tuple[dict, int]:
        """`({"train": ds, "val": (ds, labels) or None, "test": (ds, labels)}, training examples)`,
        the training examples sampled by `cfg.subset`."""
        raise NotImplementedError

    def build(self, cfg, data):
        """The uncompiled model of `cfg` for `data`."""
        raise NotImplementedError

    def prepare_model(self, cfg, model, data, datasets) -> None:
        """Anything done to the built model before training (inside the strategy's scope)."""

    def classifier(self, cfg, model):
        """The model evaluated and exported (test-time augmentation wraps it)."""
        return model

    def describe(self, cfg, data, n_train: int) -> str:
        """The data in a line, printed before training."""
        s = self.splits(data)
        return (f"Data: {s.source}; {n_train:,} train, {len(s.validation):,} validation, {len(s.test):,} test "
                f"{self.noun}, {len(s.class_names)} classes.")

    def write_files(self, cfg, run, data) -> None:
        """Files the run directory gets before training (a vocabulary)."""

    def export_files(self, cfg, path, data) -> None:
        """Files the exported SavedModel directory gets beside the model (a text model's
        vocabularies: its entry then holds them for fine-tuning)."""

    def report(self, cfg, run, model, data, datasets, probabilities: dict) -> None:
        """Plots and tables of the run beyond metrics, learning curves and the confusion matrix."""

    def serving(self, cfg, model, classifier, data) -> dict:
        """The arguments of `zoo.export.export_saved_model`: input_signature, serve_fn,
        extra_signatures, track."""
        raise NotImplementedError

    def card(self, cfg, data) -> dict:
        """Model-card fields: `preprocessing` (the spec a predictor and a fine-tune need),
        `signatures` (name -> inputs/outputs), and anything else."""
        raise NotImplementedError

    def search_space(self, hp) -> dict:
        raise NotImplementedError

    def builder_args(self, card: dict) -> dict:
        """The builder arguments this recipe sets from the data (`reserved`), as an entry's model
        card records them: what rebuilds its architecture."""
        raise NotImplementedError

    def inherit(self, cfg, parent) -> dict:
        """Config fields a run started from `parent` (`--init-from`) takes from it besides the
        architecture: its preprocessing (normalization, sample rate, vocabulary sizes)."""
        return {}

    def model_inputs(self, card: dict) -> str:
        """What the Keras model of an entry takes (its preprocessing done), in words."""
        raise NotImplementedError

    def check(self, cfg) -> None:
        """A `ZooError` for a config this recipe cannot train."""
        from zoo.registry import list_models

        if cfg.model not in list_models(self.family):
            raise ZooError(f"Unknown {self.family} model {cfg.model!r}. Known: {', '.join(list_models(self.family))}.")
        reserved = sorted(set(self.reserved) & set(cfg.model_kwargs))
        if reserved:
            raise ZooError(f"--model-arg {', '.join(reserved)}: set by the task from the data{self.reserved_hint}.")
        if hasattr(cfg, "check_fine_tuning"):
            cfg.check_fine_tuning()

    # --- fine-tuning --------------------------------------------------------------------------

    def parent(self, cfg):
        """The `zoo.finetune.Parent` of `cfg.init_from` (None without it)."""
        if not getattr(cfg, "init_from", None):
            return None
        from zoo.finetune import load_parent

        return load_parent(cfg.init_from)

    def adopt(self, cfg, task: str):
        """`cfg` with what `--init-from` fixes: the entry's architecture, builder arguments and
        preprocessing; a `ZooError` if the entry is of another input kind."""
        import dataclasses

        parent = self.parent(cfg)
        if parent is None:
            return cfg
        if parent.recipe != self.kind:
            from zoo.pretrained import list_models

            fitting = [n for n in list_models(tflite=False) if _recipe_of(n) == self.kind]
            raise ZooError(f"--init-from {cfg.init_from}: a model for {parent.recipe or 'other'} data "
                           f"({(parent.card.get('dataset') or {}).get('short', parent.card.get('task'))}); "
                           f"tasks.{task} trains on {self.noun}. Entries for {self.noun}: "
                           f"{', '.join(fitting) or 'none'}.")
        inherited = self.inherit(cfg, parent)
        changes = {"model": parent.card["model"], "model_kwargs": dict(parent.card.get("model_kwargs") or {}),
                   **inherited}
        print(f"From {parent.name}: " + ", ".join(f"--{k.replace('_', '-')} {_flag_value(v)}"
                                                  for k, v in inherited.items() if v is not None) + ".")
        if cfg.model != changes["model"] or (cfg.model_kwargs and cfg.model_kwargs != changes["model_kwargs"]):
            print(f"--init-from {parent.name}: the model is the entry's ({changes['model']} "
                  f"{changes['model_kwargs'] or ''}), in place of {cfg.model} {cfg.model_kwargs or ''} (the "
                  "preset's, with any --model and --model-arg).")
        return dataclasses.replace(cfg, **changes)

    def start_from(self, cfg, model, data) -> dict:
        """Loads the parent's weights into the built `model` (the head kept, reordered, when the
        labels are the entry's; else replaced); returns what the run and its card record."""
        from zoo.finetune import check_head, head_mapping, load_weights

        parent = self.parent(cfg)
        check_head(model)
        labels = list(self.splits(data).class_names)
        head = head_mapping(parent.labels, labels)
        done = load_weights(model, parent.variables, head=head, source=parent.name)
        print(f"Started from {parent.name}: {done['loaded']} weights loaded; head "
              + ("kept (same labels" + (", reordered)" if head != sorted(head) else ")") if head is not None else
                 f"replaced ({len(parent.labels)} labels -> {len(labels)})")
              + (f"; frozen: {cfg.freeze}" if cfg.freeze != "none" else "") + ".")
        return {**parent.lineage(), "head": done["head"], "freeze": cfg.freeze, "head_epochs": cfg.head_epochs}

    def stage_config(self, cfg):
        """The config of the (second) training stage: with --head-epochs, the learning rate scaled."""
        import dataclasses

        if getattr(cfg, "init_from", None) and cfg.head_epochs:
            return dataclasses.replace(cfg, learning_rate=cfg.learning_rate * cfg.fine_tune_lr_scale)
        return cfg

    def train_head(self, cfg, run, model, datasets, n_train) -> float:
        """The first stage of `--head-epochs N`: the head alone, N epochs at --learning-rate;
        then `model` is compiled again for the second stage. Returns its seconds."""
        import dataclasses
        import time

        from zoo.finetune import freeze, unfreeze
        from zoo.train import compile_classifier, fit_verbosity

        start = time.time()
        steps = int(np.ceil(n_train / cfg.batch_size))
        with run.strategy.scope():
            before = freeze(model, "all-but-head")
            compile_classifier(model, dataclasses.replace(cfg, epochs=cfg.head_epochs), run, steps_per_epoch=steps)
        print(f"Stage 1: the head alone, {cfg.head_epochs} epochs at learning rate {cfg.learning_rate:g}.")
        model.fit(datasets["train"], epochs=cfg.head_epochs, verbose=fit_verbosity(cfg),
                  validation_data=datasets["val"] and datasets["val"][0])
        with run.strategy.scope():
            unfreeze(before)
            compile_classifier(model, self.stage_config(cfg), run, steps_per_epoch=steps)
        print(f"Stage 2: --freeze {cfg.freeze}, learning rate {self.stage_config(cfg).learning_rate:g}.")
        return time.time() - start

    # --- the flow -----------------------------------------------------------------------------

    def compiled_model(self, cfg, run, data, datasets, n_train):
        """The built model, started from `--init-from`'s weights (and frozen as `--freeze` says)
        or prepared by `prepare_model`, compiled; `model.zoo_parent` holds the lineage (or None)."""
        from zoo.finetune import freeze
        from zoo.train import compile_classifier

        with run.strategy.scope():
            model = self.build(cfg, data)
            parent = None
            if getattr(cfg, "init_from", None):
                parent = self.start_from(cfg, model, data)
                freeze(model, cfg.freeze)
            else:
                self.prepare_model(cfg, model, data, datasets)
            compile_classifier(model, self.stage_config(cfg), run, steps_per_epoch=int(np.ceil(n_train / cfg.batch_size)))
        model.zoo_parent = parent
        return model

    def train_classifier(self, cfg, run, data, *, task: str) -> dict:
        """Data -> model -> fit -> evaluate -> report -> export, on `data` (what `load_data`
        returned); returns the metrics written to `metrics.json`.

        Writes into `run.run_dir`: history.csv, metrics.json, learning_curves.png,
        confusion_matrix.png, what `report` adds, model.weights.h5 and saved_model/ with its
        model card (metadata.json).
        """
        from zoo.evaluate import classification_metrics, predict_probabilities, write_classification_report
        from zoo.export import export_saved_model
        from zoo.train import export_metadata, finish_run, train

        splits = self.splits(data)
        class_names = list(splits.class_names)

        # Data
        if run.chief:
            self.write_files(cfg, run, data)
        datasets, n_train = self.datasets(cfg, data)
        print(self.describe(cfg, data, n_train))
        for note in splits.notes:
            print(f"  {note}")

        # Model
        model = self.compiled_model(cfg, run, data, datasets, n_train)

        # Train (with --head-epochs, the head alone first)
        from zoo.callbacks import resumed_epoch

        head_seconds = 0.0
        if model.zoo_parent and cfg.head_epochs and not (cfg.resume and resumed_epoch(run.run_dir)):
            head_seconds = self.train_head(cfg, run, model, datasets, n_train)
        history, metrics = train(model, datasets["train"], datasets["val"] and datasets["val"][0], cfg, run,
                                 task=task, dataset=splits.source)
        if model.zoo_parent:
            metrics["train_time_s"] = round(metrics["train_time_s"] + head_seconds, 1)
            metrics["init_from"] = model.zoo_parent["name"]

        # Evaluate
        classifier = self.classifier(cfg, model)
        probabilities, matrices = {}, {}
        for name in ("val", "test"):
            if datasets.get(name) is not None:
                ds, labels = datasets[name]
                probabilities[name] = predict_probabilities(classifier, ds)
                split_metrics, matrices[name] = classification_metrics(labels, probabilities[name], class_names,
                                                                       prefix=f"{name}_")
                metrics.update(split_metrics)
        print(f"Test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f} "
              f"({splits.source}, {len(datasets['test'][1]):,} {self.noun}).")
        if run.chief:
            write_classification_report(run.run_dir, metrics, history, matrices["test"], class_names,
                                        title=f"{short_name(splits.source)} test, accuracy {metrics['test_accuracy']:.2%}")
            self.report(cfg, run, model, data, datasets, probabilities)

        # Export
        if cfg.export and run.chief:
            card = self.card(cfg, data)
            path = export_saved_model(
                classifier, run.run_dir / "saved_model", **self.serving(cfg, model, classifier, data),
                weights_dtype=cfg.export_weights,
                metadata=export_metadata(
                    run, metrics, task=task, kind=self.predictor, recipe=self.kind, labels=class_names,
                    dataset=splits.source,
                    data={"spec": cfg.data, "examples": self.counts(data), "notes": list(splits.notes)},
                    model=cfg.model, model_kwargs=cfg.model_kwargs,
                    **({"parent": model.zoo_parent} if model.zoo_parent else {}), **card))
            self.export_files(cfg, path, data)
            print(f"SavedModel: {path}")
        return finish_run(run, metrics)

    def main(self, argv, config_cls, presets: dict, *, task: str, doc: str) -> dict:
        """A task's `main`: parses the config (dataclass -> preset -> flags), sets up the run and
        trains; returns the metrics (those of the finished run, if the run directory holds it)."""
        from zoo.config import parse_config
        from zoo.datasets import check_data_spec
        from zoo.train import setup_run

        cfg = parse_config(config_cls, presets, argv, prog=f"python -m tasks.{task}", description=doc.strip())
        self.check(cfg)
        cfg = self.adopt(cfg, task)
        check_data_spec(cfg.data, self.kind)
        run = setup_run(cfg, task, argv)
        if run.finished is not None:
            return run.finished
        return self.train_classifier(cfg, run, self.load_data(cfg), task=task)

    # --- tuning -------------------------------------------------------------------------------

    def tuning_hooks(self):
        """`load_data, train_size, build_trial, search_space` for a task module (see tuning/search.py)."""
        from zoo.train import Experiment

        def build_trial(cfg, run, data):
            datasets, n_train = self.datasets(cfg, data)
            model = self.compiled_model(cfg, run, data, datasets, n_train)
            return Experiment(model, datasets["train"], datasets["val"] and datasets["val"][0])

        return self.load_data, self.train_size, build_trial, self.search_space


def _flag_value(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_flag_value(v) for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _recipe_of(name) -> str:
    import json

    from zoo.finetune import recipe_of
    from zoo.pretrained import models_dir

    return recipe_of(json.loads((models_dir() / name / "metadata.json").read_text()))


def short_name(source: str) -> str:
    """A dataset's source for plot titles: a path's last part, else the name."""
    from pathlib import Path

    return Path(source).name if "/" in source else source
