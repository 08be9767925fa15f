"""The Lookahead callback: its averaging schedule, what it averages, and what validation sees."""

import keras
import numpy as np
import pytest

from zoo.callbacks import Lookahead


def values(model):
    return [keras.ops.convert_to_numpy(w).copy() for w in model.weights if "float" in str(w.dtype)]


def shift_all(model, delta):
    for w in model.weights:
        if "float" in str(w.dtype):
            w.assign(keras.ops.convert_to_numpy(w) + delta)


@pytest.fixture
def model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    model.compile(optimizer="sgd", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_every_k_steps_the_weights_move_to_a_rising_average_of_their_slow_copy(model):
    cb = Lookahead(every=5, base=0.95, power=3.0)
    cb.set_model(model)
    cb.set_params({"steps": 12, "epochs": 2})
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    start = values(model)
    assert any("moving_mean" in w.path for w in model.weights)  # batch-norm statistics are averaged too

    shift_all(model, 1.0)  # as if five steps of training moved every weight by 1
    model.optimizer.iterations.assign(5)
    cb.on_train_batch_end(4)
    decay = 0.95 ** 5 * (5 / 24) ** 3
    for now, before in zip(values(model), start):
        np.testing.assert_allclose(now, before + (1 - decay), rtol=1e-6)
    synced = values(model)

    shift_all(model, 1.0)
    model.optimizer.iterations.assign(7)
    cb.on_train_batch_end(6)  # two steps after a sync: left alone
    for now, before in zip(values(model), synced):
        np.testing.assert_allclose(now, before + 1.0, rtol=1e-6)

    model.optimizer.iterations.assign(10)
    cb.on_train_batch_end(9)
    decay = 0.95 ** 5 * (10 / 24) ** 3
    for now, before in zip(values(model), synced):
        np.testing.assert_allclose(now, before + (1 - decay) * 1.0, rtol=1e-6)
    synced = values(model)

    shift_all(model, 3.0)
    model.optimizer.iterations.assign(12)
    cb.on_train_batch_end(11)  # the epoch's last batch: back to the slow copy before validation
    for now, before in zip(values(model), synced):
        np.testing.assert_allclose(now, before, rtol=1e-6)


def test_validation_and_the_end_of_training_see_the_averaged_weights():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3)).astype("float32"), rng.normal(size=(60, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    lookahead = Lookahead(every=4)

    class AtValidation(keras.callbacks.Callback):
        seen = []

        def on_test_begin(self, logs=None):
            self.seen.append([np.array_equal(w, s) for w, s in zip(values(self.model), lookahead._slow)])

    model.fit(x, y, batch_size=10, epochs=3, validation_data=(x, y), callbacks=[lookahead, AtValidation()], verbose=0)
    assert AtValidation.seen == [[True, True]] * 3
    assert all(np.array_equal(w, s) for w, s in zip(values(model), lookahead._slow))
    assert int(model.optimizer.iterations) == 18


def test_lookahead_needs_a_positive_period():
    with pytest.raises(ValueError, match="every must be >= 1"):
        Lookahead(every=0)


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_lookahead_counts_the_steps_fit_runs(steps_per_execution):
    x, y = np.ones((10, 3), "float32"), np.ones((10, 1), "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", steps_per_execution=steps_per_execution)
    synced = []
    lookahead = Lookahead(every=4)
    sync = lookahead._sync
    lookahead._sync = lambda decay: synced.append((int(model.optimizer.iterations), decay == 1.0)) or sync(decay)
    model.fit(x, y, batch_size=2, epochs=2, callbacks=[lookahead], verbose=0)  # 5 steps an epoch
    # Every 4 steps or more (as many as a call of the train function runs), and the slow copy at
    # each epoch's end, once.
    expected = {1: [(4, False), (5, True), (8, False), (10, True)], 2: [(4, False), (5, True), (9, False), (10, True)]}
    assert synced == expected[steps_per_execution]
