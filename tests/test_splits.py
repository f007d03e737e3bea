"""Split and batch order: deterministic, stratified, and identical in both engines."""

import numpy as np

from fmnist.splits import Split, batch_slices, epoch_permutation, stratified_split


def test_stratified_split_sizes_and_balance():
    labels = np.repeat(np.arange(10, dtype=np.uint8), 600)
    train, val = stratified_split(labels, 0.1, seed=0)
    assert len(train) == 5400 and len(val) == 600
    assert set(np.bincount(labels[val])) == {60}
    assert len(np.intersect1d(train, val)) == 0 and len(np.union1d(train, val)) == 6000


def test_stratified_split_uneven_classes_hits_the_exact_size():
    labels = np.array([0] * 7 + [1] * 5 + [2] * 11, dtype=np.uint8)
    train, val = stratified_split(labels, 0.3, seed=3)
    assert len(val) == round(0.3 * 23)
    assert all(abs(np.sum(labels[val] == c) - 0.3 * np.sum(labels == c)) < 1 for c in range(3))


def test_split_and_order_are_deterministic_and_seeded():
    labels = np.repeat(np.arange(10, dtype=np.uint8), 50)
    assert all(np.array_equal(a, b) for a, b in zip(stratified_split(labels, 0.1, 1), stratified_split(labels, 0.1, 1)))
    assert not np.array_equal(stratified_split(labels, 0.1, 1)[1], stratified_split(labels, 0.1, 2)[1])
    assert np.array_equal(epoch_permutation(100, 0, 3), epoch_permutation(100, 0, 3))
    assert not np.array_equal(epoch_permutation(100, 0, 3), epoch_permutation(100, 0, 4))
    assert not np.array_equal(epoch_permutation(100, 0, 3), epoch_permutation(100, 1, 3))


def test_batches_cover_every_example_once():
    slices = batch_slices(1000, 128)
    assert len(slices) == 8 and slices[-1] == slice(896, 1000)
    covered = np.concatenate([np.arange(1000)[s] for s in slices])
    assert np.array_equal(covered, np.arange(1000))


def test_both_engines_draw_identical_batches(tiny_images):
    """Keras' PyDataset and Lightning's sampler give the same images in the same batches."""
    from keras_model.data import EvalBatches, TrainBatches
    from torch_blocks.batches import batch_loader

    images, labels = tiny_images
    split = Split(images, labels)
    keras_batches = TrainBatches(split, batch_size=32, seed=5, epochs=3)
    loader = batch_loader(split, 32, seed=5, shuffle=True)
    n = keras_batches.batches_per_epoch
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        for b, (x_t, y_t) in enumerate(loader):
            x_k, y_k = keras_batches[epoch * n + b]
            assert np.array_equal(x_k[..., 0], x_t[:, 0].numpy()) and np.array_equal(y_k, y_t.numpy())
        assert b == n - 1
    # Evaluation: every image once, in order, in both.
    keras_eval = np.concatenate([EvalBatches(images, labels, 64)[i][1] for i in range(4)])
    torch_eval = np.concatenate([y.numpy() for _, y in batch_loader(split, 64)])
    assert np.array_equal(keras_eval, labels) and np.array_equal(torch_eval, labels)


def test_keras_fit_consumes_batches_in_the_shared_order(baseline_config, tiny_images):
    """model.fit must not reorder the PyDataset's batches (its default shuffle=True would)."""
    from keras_model.training import compile_model, fit
    from keras_model.data import TrainBatches
    from keras_model.model import build_model

    class Recording(TrainBatches):
        def __getitem__(self, index):
            self.seen.append(index)
            return super().__getitem__(index)

    data = Recording(Split(*tiny_images), batch_size=64, seed=0, epochs=2)
    data.seen = []
    fit(compile_model(build_model(baseline_config), baseline_config), data, None, [])
    total = data.batches_per_epoch * 2
    # Keras reads a couple of batches first to learn their shapes; then every batch once, in order.
    assert data.seen[-total:] == list(range(total))


def test_keras_fit_input_is_the_same_batches_without_autotuning(baseline_config, tiny_images):
    """On TensorFlow fit reads the batches through tf.data with autotuning off: autotuned, its
    model thread held fit's return 10-40 s after the last epoch on one core (docs/speed.md)."""
    from keras_model.data import TrainBatches, fit_input

    data = TrainBatches(Split(*tiny_images), batch_size=64, seed=0, epochs=2)
    dataset = fit_input(data)
    assert dataset.options().autotune.enabled is False
    fed = list(dataset.as_numpy_iterator())
    assert len(fed) == len(data)
    for i, (x, y) in enumerate(fed):
        assert np.array_equal(x, data[i][0]) and np.array_equal(y, data[i][1])
