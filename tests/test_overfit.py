"""Before anything else on a model: the first loss is about ln(10), and it can memorise one batch."""

import math

import numpy as np
import pytest
import torch

from fmnist.splits import Split

STEPS = 100


@pytest.fixture
def one_batch(tiny_images):
    images, labels = tiny_images
    return images[:32], labels[:32]


def test_keras_overfits_one_batch(baseline_config, one_batch):
    import keras

    from keras_model.training import compile_model
    from keras_model.model import build_model

    keras.utils.set_random_seed(0)
    model = compile_model(build_model(baseline_config), baseline_config)
    x, y = one_batch[0].astype(np.float32)[..., None], one_batch[1].astype(np.int32)
    first = model.evaluate(x, y, verbose=0)[0]
    history = model.fit(x, y, batch_size=32, epochs=STEPS, verbose=0, shuffle=False)
    assert abs(first - math.log(10)) < 0.5
    assert history.history["loss"][-1] < history.history["loss"][0] / 5
    loss, accuracy = model.evaluate(x, y, verbose=0)  # inference mode: no dropout
    assert loss < 0.1 and accuracy == 1.0


def test_lightning_overfits_one_batch(baseline_config, one_batch, tmp_path):
    import lightning as L

    from torch_blocks.batches import batch_loader
    from lightning_model.module import FashionClassifier

    L.seed_everything(0, verbose=False)
    module = FashionClassifier.from_config(baseline_config)
    loader = batch_loader(Split(*one_batch), 32)
    x, y = next(iter(loader))
    with torch.no_grad():
        first = torch.nn.functional.cross_entropy(module(x), y).item()
    before = [p.detach().clone() for p in module.parameters()]
    trainer = L.Trainer(
        max_epochs=STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=loader)
    module.eval()
    with torch.no_grad():
        logits = module(x)
    assert abs(first - math.log(10)) < 0.5
    assert torch.nn.functional.cross_entropy(logits, y).item() < 0.1
    assert (logits.argmax(1) == y).all()
    assert all(not torch.equal(a, b) for a, b in zip(before, module.parameters()))  # every tensor moved
