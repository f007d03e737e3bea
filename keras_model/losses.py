"""The training loss with label smoothing, for integer labels.

Keras 3's SparseCategoricalCrossentropy has no `label_smoothing` (CategoricalCrossentropy has, on
one-hot targets). This loss takes the integer labels the data pipeline yields, one-hot encodes
them and applies CategoricalCrossentropy's smoothing: targets (1 - e) * one_hot + e / 10, the
same as torch's `F.cross_entropy(..., label_smoothing=e)`. It is registered, so a saved
model.keras compiled with it loads again (with this module imported, as keras_model.training does).

Without smoothing the backend keeps SparseCategoricalCrossentropy, so existing runs and their
saved models are untouched.
"""

from __future__ import annotations

import keras

from fmnist import NUM_CLASSES


@keras.saving.register_keras_serializable(package="fmnist", name="SparseCrossentropyWithSmoothing")
class SparseCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy from logits against smoothed one-hot targets of integer labels."""

    def __init__(
        self,
        label_smoothing: float = 0.0,
        num_classes: int = NUM_CLASSES,
        name: str = "sparse_crossentropy_with_smoothing",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)
        self.num_classes = int(num_classes)

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        one_hot = keras.ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "num_classes": self.num_classes}


def training_loss(label_smoothing: float) -> keras.losses.Loss:
    """The loss `model.fit` minimises (and reports, validation included): sparse cross-entropy
    from logits, smoothed when `label_smoothing` > 0."""
    if label_smoothing > 0.0:
        return SparseCrossentropyWithSmoothing(label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
