"""Both builders make the same network: layer names, shapes, parameter counts, and weights that
transfer either way give the same logits (max abs diff <= 1e-5)."""

import numpy as np
import pytest
import torch

from fmnist.architecture import count_params, layer_plan, same_padding


@pytest.fixture(params=["baseline", "bn_same_stride"])
def config(request, baseline_config, bn_same_stride_config):
    return baseline_config if request.param == "baseline" else bn_same_stride_config


def test_baseline_parameter_count(baseline_config):
    from keras_model import build_model
    from torch_blocks.network import build_network

    # 320 + 18,496 (convs) + 204,928 (1600 -> 128) + 1,290 (128 -> 10)
    assert count_params(baseline_config) == 225_034
    assert build_model(baseline_config).count_params() == 225_034
    assert sum(p.numel() for p in build_network(baseline_config).parameters()) == 225_034


def test_same_padding_puts_the_odd_pixel_last():
    assert same_padding(28, 3, 2) == (0, 1)  # TF pads bottom/right only
    assert same_padding(28, 3, 1) == (1, 1)
    assert same_padding(28, 5, 1) == (2, 2)


def test_layers_match_by_name_shape_and_params(config):
    from keras_model import build_model
    from torch_blocks.network import build_network

    model, network = build_model(config), build_network(config)
    plan = layer_plan(config)
    assert [layer.name for layer in model.layers] == [spec.name for spec in plan]
    assert [name for name, _ in network.named_children()] == [spec.name for spec in plan]
    # Keras shapes are NHWC, torch NCHW: both must equal the plan's (H, W, C).
    x = torch.zeros(2, 1, 28, 28)
    for spec, layer, (_, module) in zip(plan, model.layers, network.named_children()):
        x = module.eval()(x)
        torch_shape = tuple(x.shape[1:]) if x.dim() == 2 else (x.shape[2], x.shape[3], x.shape[1])
        assert tuple(layer.output.shape[1:]) == spec.out_shape == torch_shape, spec.name
        keras_params = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        torch_params = sum(p.numel() for p in module.parameters())
        assert keras_params == torch_params == spec.num_params, spec.name


def _random_bn_statistics(network):
    """Non-trivial running statistics, so the test sees whether they transfer."""
    g = torch.Generator().manual_seed(1)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=g))
            module.running_var.copy_(torch.rand(module.num_features, generator=g) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=g) + 0.5)


@pytest.mark.parametrize("direction", ["keras_to_torch", "torch_to_keras"])
def test_weight_transfer_gives_the_same_logits(config, direction, tiny_images):
    from keras_model import build_model
    from keras_model.model import set_shared_weights, shared_weights
    from torch_blocks.network import build_network
    from torch_blocks.network import load_shared_weights

    model, network = build_model(config), build_network(config).eval()
    if direction == "keras_to_torch":
        load_shared_weights(network, shared_weights(config, model), "float32")
    else:
        _random_bn_statistics(network)
        set_shared_weights(config, model, {k: v.numpy() for k, v in network.state_dict().items()})
    images = tiny_images[0].astype(np.float32)
    keras_logits = np.asarray(model(images[..., None], training=False))
    with torch.no_grad():
        torch_logits = network(torch.from_numpy(images[:, None])).numpy()
    assert np.abs(keras_logits - torch_logits).max() <= 1e-5
    assert (keras_logits.argmax(1) == torch_logits.argmax(1)).all()
    # Untransferred networks differ: the test would catch a transfer that did nothing.
    fresh = build_network(config).eval()
    with torch.no_grad():
        assert np.abs(fresh(torch.from_numpy(images[:, None])).numpy() - keras_logits).max() > 1e-3


def test_flatten_order_matters(baseline_config):
    """Copying the first dense kernel without the H,W,C -> C,H,W row permutation breaks parity."""
    from fmnist.weight_layout import keras_to_torch_arrays

    rng = np.random.default_rng(0)
    weights = {
        spec.name: [rng.normal(size=s).astype(np.float32) for s in shapes]
        for spec, shapes in [(s, _keras_shapes(s)) for s in layer_plan(baseline_config)]
        if shapes
    }
    state = keras_to_torch_arrays(baseline_config, weights)
    kernel = weights["dense1"][0]  # (5*5*64, 128), rows in H, W, C order
    mapped = state["dense1.weight"]  # (128, 64*5*5), columns in C, H, W order
    h, w, c = 5, 5, 64
    for ci, hi, wi in [(0, 0, 1), (3, 2, 4), (63, 4, 4)]:
        assert np.array_equal(mapped[:, ci * h * w + hi * w + wi], kernel[hi * w * c + wi * c + ci])
    assert not np.array_equal(mapped, kernel.T)


def _keras_shapes(spec):
    a = spec.args
    if spec.kind == "conv":
        return [(a["kernel_size"], a["kernel_size"], a["in_channels"], a["filters"]), (a["filters"],)]
    if spec.kind == "dense":
        return [(a["in_features"], a["units"]), (a["units"],)]
    return []


def test_layer_outputs_move_between_the_shared_and_torch_layouts(baseline_config):
    """fmnist.weight_layout.activation: NHWC <-> NCHW, and Flatten's H, W, C order <-> torch's C, H, W."""
    from fmnist.weight_layout import activation

    plan = {spec.kind: spec for spec in layer_plan(baseline_config)}
    nchw = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    shared = activation(nchw.numpy(), plan["conv"], "shared")
    assert np.array_equal(shared, nchw.permute(0, 2, 3, 1).numpy())
    assert np.array_equal(activation(shared, plan["conv"], "nchw"), nchw.numpy())
    c, h, w = plan["flatten"].args["chw"]
    maps = torch.randn(2, c, h, w)
    torch_flat = torch.nn.Flatten()(maps).numpy()
    shared_flat = maps.permute(0, 2, 3, 1).reshape(2, -1).numpy()  # what Keras' Flatten gives
    assert np.array_equal(activation(torch_flat, plan["flatten"], "shared"), shared_flat)
    assert np.array_equal(activation(shared_flat, plan["flatten"], "nchw"), torch_flat)
