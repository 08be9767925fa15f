"""The generic commands end to end on data of the kind a new user brings: `tasks.vision.classify`
on a folder of class folders of mixed sizes and formats without `test/`, `tasks.text.classify` on
a 3-class CSV, `tasks.speech.classify` on WAV/FLAC clips at mixed rates and lengths; each then
published and loaded back with `zoo.load`. Each trains for seconds: marked slow."""

import json

import numpy as np
import pytest
import soundfile as sf

from tests.test_image_data import COLOURS, mixed_folder, save, tinted
from tests.test_speech_tasks import run_main
from tests.test_text_data import CLASS_NAMES, toy_rows, toy_text, write_table
from zoo.errors import DataError, ZooError

FAST = ["--batch-size", "8", "--no-tensorboard", "--verbose", "0", "--precision", "float32", "--jit-compile", "false"]


# --- images -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    from tasks.vision import classify

    root = tmp_path_factory.mktemp("photos")
    mixed_folder(root / "photos", counts=(12, 12, 9))
    run_dir = root / "run"
    metrics, stdout = run_main(classify.main, [*FAST, "--data", str(root / "photos"), "--image-size", "24",
                                               "--model", "seed_cnn", "--epochs", "2", "--validation-split", "0.2",
                                               "--test-split", "0.2", "--output-dir", str(run_dir)])
    return dict(metrics=metrics, stdout=stdout, run_dir=run_dir, root=root)


@pytest.mark.slow
def test_a_folder_of_photos_of_any_size_trains_and_exports(image_run):
    m, stdout = image_run["metrics"], image_run["stdout"]
    assert (m["task"], m["model"]) == ("vision.classify", "seed_cnn")
    assert "3 classes, 24x24" in stdout and "resized to 24x24" in stdout  # the notes of the mixed sizes
    card = json.loads((image_run["run_dir"] / "saved_model" / "metadata.json").read_text())
    assert card["labels"] == list(COLOURS) and card["recipe"] == "image" and card["kind"] == "image_classifier"
    assert card["preprocessing"]["image_size"] == [24, 24] and len(card["preprocessing"]["mean"]) == 3
    assert card["data"]["examples"]["test"] == m["test_examples"] >= 3
    assert set(card["signatures"]) >= {"serve", "serve_any_size", "serving_default"}


@pytest.mark.slow
def test_the_published_photo_model_predicts_files_of_another_size(image_run, tmp_path):
    import zoo
    from zoo.publish import publish

    entry = publish(image_run["run_dir"], "my_photos", models_dir=tmp_path)
    model = zoo.load(entry)
    photo = save(tmp_path / "big.jpg", tinted(np.random.default_rng(5), 0, 300, 200))
    (result,) = model.predict([photo])
    assert result["label"] in COLOURS and len(result["top_k"]) == 3
    p = model.probabilities(np.stack([tinted(np.random.default_rng(i), 1, 50, 70) for i in range(2)]))
    assert p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1, atol=1e-5)


# --- texts ------------------------------------------------------------------------------------------

TEXT_ARGS = [*FAST, "--model-arg", "embedding_dim=8", "--model-arg", "units=(8,)", "--vocab-size", "64",
             "--max-length", "16", "--learning-rate", "0.02", "--epochs", "8"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    from tasks.text import classify

    root = tmp_path_factory.mktemp("questions")
    write_table(root / "questions.csv", toy_rows(n=30), header=("question", "topic"))
    run_dir = root / "run"
    metrics, stdout = run_main(classify.main, [*TEXT_ARGS, "--data", str(root / "questions.csv"), "--text-column",
                                               "question", "--label-column", "topic", "--output-dir", str(run_dir)])
    return dict(metrics=metrics, stdout=stdout, run_dir=run_dir)


@pytest.mark.slow
def test_a_three_class_csv_trains_and_serves_probabilities_over_three_classes(text_run, tmp_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    import zoo
    from zoo.publish import publish

    m = text_run["metrics"]
    assert m["task"] == "text.classify" and m["test_accuracy"] >= 0.8, m
    model = tf.saved_model.load(str(text_run["run_dir"] / "saved_model"))
    rng = np.random.default_rng(1)
    texts = [toy_text(c, rng) for c in CLASS_NAMES]
    out = model.serve(tf.constant(texts))
    assert out["probabilities"].shape == (3, 3)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(axis=1), 1, atol=1e-5)
    entry = zoo.load(publish(text_run["run_dir"], "topics", models_dir=tmp_path))
    p = entry.probabilities(texts)
    np.testing.assert_allclose(p, out["probabilities"].numpy(), atol=1e-5)
    assert [r["label"] for r in entry.predict(texts)] == list(CLASS_NAMES)


def test_generic_tasks_need_data_and_name_the_kinds(tmp_path):
    from tasks.text import classify as text_classify
    from tasks.vision import classify as vision_classify

    with pytest.raises(ZooError, match="--data is required"):
        vision_classify.main(["--epochs", "1", "--output-dir", str(tmp_path / "a")])
    with pytest.raises(ZooError, match="a dataset of images, and this recipe trains on texts"):
        text_classify.main(["--data", "cifar10", "--epochs", "1", "--output-dir", str(tmp_path / "b")])
    assert not list(tmp_path.iterdir())  # refused before a run directory was made


def test_a_folder_with_one_class_is_refused_before_training(tmp_path):
    from tasks.vision import classify

    mixed_folder(tmp_path / "one", counts=(4,))
    with pytest.raises(DataError, match="one class"):
        classify.main([*FAST, "--data", str(tmp_path / "one"), "--output-dir", str(tmp_path / "run")])


# --- audio ------------------------------------------------------------------------------------------

TONES = {"low": 400.0, "mid": 900.0, "high": 1800.0}
RATES = (8000, 16000, 44100)


def write_clips(root, per_label=8, seed=0):
    """`root/<label>/*`: a tone per label with noise, at 8, 16 and 44.1 kHz, 0.3-0.6 s long, mono
    and stereo, as 16-bit and float WAV and as FLAC."""
    rng = np.random.default_rng(seed)
    for label, freq in TONES.items():
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            rate, seconds = RATES[i % 3], 0.3 + 0.05 * (i % 7)
            t = np.arange(int(rate * seconds)) / rate
            x = 0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.normal(size=t.size)
            x = np.stack([x, x], axis=1) if i % 4 == 1 else x
            fmt = ("wav", "PCM_16") if i % 3 == 0 else ("wav", "FLOAT") if i % 3 == 1 else ("flac", "PCM_24")
            sf.write(root / label / f"clip{i}.{fmt[0]}", x.astype("float32"), rate, subtype=fmt[1])
    return root


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    from tasks.speech import classify

    root = tmp_path_factory.mktemp("clips")
    write_clips(root / "clips")
    run_dir = root / "run"
    metrics, stdout = run_main(classify.main, [*FAST, "--data", str(root / "clips"), "--sample-rate", "8000",
                                               "--model", "ds_cnn", "--model-arg", "filters=8", "--model-arg",
                                               "blocks=1", "--epochs", "2", "--validation-split", "0.2",
                                               "--test-split", "0.2", "--output-dir", str(run_dir)])
    return dict(metrics=metrics, stdout=stdout, run_dir=run_dir, root=root)


@pytest.mark.slow
def test_clips_of_mixed_rates_formats_and_lengths_train_and_export(audio_run, tmp_path):
    import zoo
    from zoo.publish import publish

    m, stdout = audio_run["metrics"], audio_run["stdout"]
    assert m["task"] == "speech.classify" and m["test_examples"] >= 3
    assert "8000 Hz" in stdout and "resampled" in stdout  # the notes on the mixed rates
    card = json.loads((audio_run["run_dir"] / "saved_model" / "metadata.json").read_text())
    assert card["labels"] == sorted(TONES) and card["recipe"] == "audio"
    assert card["sample_rate"] == 8000 and card["preprocessing"]["num_samples"] == card["num_samples"]
    entry = zoo.load(publish(audio_run["run_dir"], "tones", models_dir=tmp_path))
    clips = sorted((audio_run["root"] / "clips" / "high").iterdir())[:3]  # 16-bit WAV, float WAV, FLAC
    results = entry.predict(clips)
    assert len(results) == 3 and all(r["label"] in TONES for r in results)
    p = entry.probabilities(clips)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_a_search_runs_on_a_folder_of_photos(image_run, tmp_path):
    from tests.test_tuning import read_rows, run_search

    d = tmp_path / "search"
    argv = ["vision.classify", "--data", image_run["root"] / "photos", "--image-size", 24, "--fix", "model=seed_cnn",
            *FAST[2:], "--in-process", "--tuner", "random", "--max-trials", 1, "--max-epochs", 1,
            "--validation-split", 0.2, "--directory", d]
    result, stdout = run_search(argv)
    assert [r["status"] for r in read_rows(d)] == ["COMPLETED"]
    assert result["best"]["command"].startswith("python -m tasks.vision.classify --data ")
