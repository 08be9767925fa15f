"""Losses the Keras core lacks."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing, from logits.

    `keras.losses.SparseCategoricalCrossentropy` has no `label_smoothing`; this one-hot encodes
    in the loss so the data pipeline keeps compact integer labels. Labels may have any shape
    that `y_pred` has without its class axis (`[batch]` for classifiers, `[batch, steps]` for
    sequence models).

    With `ignore_class` (the padding id of a sequence model), positions labelled with it add
    nothing and the loss is the mean over the other positions, as Keras' own `ignore_class`.
    """

    def __init__(self, label_smoothing=0.0, ignore_class=None, name="sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing
        self.ignore_class = ignore_class

    def call(self, y_true, y_pred):
        num_classes = ops.shape(y_pred)[-1]
        labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        losses = keras.losses.categorical_crossentropy(
            ops.one_hot(labels, num_classes, dtype=y_pred.dtype), y_pred, from_logits=True,
            label_smoothing=self.label_smoothing)
        if self.ignore_class is None:
            return losses
        # Weight kept positions by total/kept, so the "sum_over_batch_size" reduction (a mean
        # over every position) becomes the mean over kept positions.
        keep = ops.cast(ops.not_equal(labels, self.ignore_class), losses.dtype)
        scale = ops.divide_no_nan(ops.cast(ops.size(keep), losses.dtype), ops.sum(keep))
        return losses * keep * scale

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "ignore_class": self.ignore_class}
