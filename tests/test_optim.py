"""The torch backend's Keras-exact Adam takes the same steps as keras.optimizers.Adam."""

import numpy as np
import torch

from torch_blocks.optim import KerasAdam


def _keras_trajectory(w0, targets, steps, optimizer="Adam", lrs=None, **kw):
    """Keras' `optimizer` on ||w - target||^2; `lrs`: a learning rate per step (a schedule)."""
    import keras

    w = keras.Variable(w0.copy())
    opt = getattr(keras.optimizers, optimizer)(**kw)
    out = []
    for t in range(steps):
        if lrs is not None:
            opt.learning_rate = float(lrs[t])
        grad = 2 * (np.asarray(w) - targets[t % len(targets)])  # d/dw of ||w - target||^2
        opt.apply_gradients([(keras.ops.convert_to_tensor(grad.astype(np.float32)), w)])
        out.append(np.asarray(w).copy())
    return np.array(out)


def _torch_trajectory(opt_cls, w0, targets, steps, lrs=None, **kw):
    w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = opt_cls([w], **kw)
    out = []
    for t in range(steps):
        if lrs is not None:
            opt.param_groups[0]["lr"] = float(lrs[t])
        opt.zero_grad()
        ((w - torch.from_numpy(targets[t % len(targets)])) ** 2).sum().backward()
        opt.step()
        out.append(w.detach().numpy().copy())
    return np.array(out)


def test_keras_adam_matches_keras_on_a_toy_problem():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(50,)).astype(np.float32)
    targets = rng.normal(size=(7, 50)).astype(np.float32) * 1e-3  # small gradients: epsilon matters
    kw = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-3)
    keras_w = _keras_trajectory(w0, targets, 30, learning_rate=0.01, **kw)
    ours = _torch_trajectory(KerasAdam, w0, targets, 30, lr=0.01, **kw)
    stock = _torch_trajectory(torch.optim.Adam, w0, targets, 30, lr=0.01, betas=(0.9, 0.999), eps=1e-3)
    assert np.abs(ours - keras_w).max() < 1e-6
    # The stock torch update is measurably different: the reason KerasAdam exists.
    assert np.abs(stock - keras_w).max() > 1e-4


def test_keras_adam_state_round_trips():
    w = torch.nn.Parameter(torch.ones(3))
    opt = KerasAdam([w], lr=0.1)
    w.grad = torch.ones(3)
    opt.step()
    state = opt.state_dict()
    again = KerasAdam([w], lr=0.1)
    again.load_state_dict(state)
    assert again.state[w]["step"] == 1 and torch.equal(again.state[w]["m"], opt.state[w]["m"])


def test_keras_adam_with_weight_decay_is_keras_adamw_step_for_step():
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(50,)).astype(np.float32)
    targets = rng.normal(size=(7, 50)).astype(np.float32) * 1e-3
    lrs = np.linspace(0.02, 0.002, 40)
    kw = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-3)
    # A schedule: the decay must use each step's rate.
    keras_w = _keras_trajectory(
        w0, targets, len(lrs), "AdamW", lrs, learning_rate=float(lrs[0]), weight_decay=0.1, **kw
    )
    ours = _torch_trajectory(KerasAdam, w0, targets, len(lrs), lrs, lr=float(lrs[0]), weight_decay=0.1, **kw)
    no_decay = _torch_trajectory(KerasAdam, w0, targets, len(lrs), lrs, lr=float(lrs[0]), **kw)
    assert np.abs(ours - keras_w).max() < 1e-6
    assert np.abs(no_decay - keras_w).max() > 1e-3  # the decay is really there
    # weight_decay 0 (and the old constructor) is plain Keras Adam, as before.
    plain = _torch_trajectory(KerasAdam, w0, targets, 5, lr=0.01, **kw)
    assert np.array_equal(plain, _torch_trajectory(KerasAdam, w0, targets, 5, lr=0.01, weight_decay=0.0, **kw))
