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

    def check(self, cfg) -> None:
        """A `ZooError` for a config this recipe cannot train."""
        from zoo.registry import list_models

        if cfg.model not in list_models(self.family):
            raise ZooError(f"Unknown {self.family} model {cfg.model!r}. Known: {', '.join(list_models(self.family))}.")
        reserved = sorted(set(self.reserved) & set(cfg.model_kwargs))
        if reserved:
            raise ZooError(f"--model-arg {', '.join(reserved)}: set by the task from the data{self.reserved_hint}.")

    # --- the flow -----------------------------------------------------------------------------

    def compiled_model(self, cfg, run, data, datasets, n_train):
        from zoo.train import compile_classifier

        with run.strategy.scope():
            model = self.build(cfg, data)
            self.prepare_model(cfg, model, data, datasets)
            compile_classifier(model, cfg, run, steps_per_epoch=int(np.ceil(n_train / cfg.batch_size)))
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

        # Train
        history, metrics = train(model, datasets["train"], datasets["val"] and datasets["val"][0], cfg, run,
                                 task=task, dataset=splits.source)

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
                    model=cfg.model, model_kwargs=cfg.model_kwargs, **card))
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


def short_name(source: str) -> str:
    """A dataset's source for plot titles: a path's last part, else the name."""
    from pathlib import Path

    return Path(source).name if "/" in source else source
