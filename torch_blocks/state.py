"""A run's training state (`fmnist.run_state`) on the torch side, where the two torch engines
agree: the network's state dict, `KerasAdam`'s per-parameter state (step, m, v) and the LambdaLR
of `fmnist.schedules`, out to the shared layout and back into the very objects their trainings
build (`torch_blocks.optim.make_optimizer`, `torch_blocks.plain_loop.schedule_factor`), so what
is written is what `state_dict()` of a live training writes. Each engine says which file holds
which part (`lightning_model.state`, `pytorch_model.state`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fmnist.config import Config, with_overrides
from fmnist.errors import RunDirError
from fmnist.run_state import ADAM_FAMILY
from fmnist.weight_layout import layout_keys
from torch_blocks.network import build_network, load_shared_weights
from torch_blocks.optim import make_optimizer
from torch_blocks.plain_loop import PlainTraining, schedule_factor


def parameter_names(config: Config) -> list[str]:
    """The network's parameters in `parameters()` order: an optimizer state's indices, by name."""
    return [name for name, _ in build_network(config).named_parameters()]


def shared_parts(
    config: Config, network: Mapping[str, torch.Tensor], optimizer: dict[str, Any] | None
) -> tuple[dict[str, np.ndarray], dict[str, Any] | None, int]:
    """(weights, optimizer moments, step count) of a network state dict and an optimizer state
    dict, in the shared layout; a KerasAdam that never stepped has zero moments at step 0."""
    try:
        weights = {k: network[k].detach().float().cpu().numpy() for k in layout_keys(config)}
    except KeyError as exc:
        raise RunDirError(f"the checkpoint's network lacks {exc.args[0]}: it is not this config's network") from None
    name = config.train.optimizer.name
    if optimizer is None or name not in ADAM_FAMILY:
        return weights, None, 0
    names = parameter_names(config)
    per_param = optimizer.get("state", {})
    if not per_param:  # built, never stepped
        zeros = {n: np.zeros_like(weights[n]) for n in layout_keys(config, parameters_only=True)}
        return weights, {"name": name, "m": zeros, "v": dict(zeros)}, 0
    steps = {int(s["step"]) for s in per_param.values()}
    if len(steps) != 1 or len(per_param) != len(names):
        raise RunDirError("the checkpoint's optimizer state does not cover every parameter at one step count")
    moments = {
        key: {names[int(i)]: s[key].detach().float().cpu().numpy() for i, s in per_param.items()} for key in ("m", "v")
    }
    return weights, {"name": name, **moments}, steps.pop()


def optimizer_at(
    config: Config, network: torch.nn.Module, state: dict[str, Any], steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The config's optimizer over `network` holding the state's moments and step count, and its
    LambdaLR where the state stands (epochs done, or steps taken with `schedule.per_step`): the
    rate of the next step in the optimizer, as a live training's checkpoint has it."""
    optimizer = make_optimizer(network.parameters(), config.train.optimizer)
    moments = state["optimizer"]
    if moments is not None:
        for name, p in network.named_parameters():
            optimizer.state[p] = {
                "step": int(state["steps"]),
                "m": torch.from_numpy(moments["m"][name]).to(p),
                "v": torch.from_numpy(moments["v"][name]).to(p),
            }
    t = config.train
    position = state["epochs"] * steps_per_epoch if t.schedule.per_step else state["epochs"]
    for group in optimizer.param_groups:
        group["initial_lr"] = t.optimizer.lr  # what LambdaLR records at its start
    # A scheduler made at `position - 1` steps once, to `position`: the rate of the next step.
    factor = schedule_factor(t, steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor, last_epoch=position - 1)
    return optimizer, schedule


def network_with(config: Config, weights: dict[str, np.ndarray]) -> torch.nn.Sequential:
    """The config's network holding the state's weights, float32."""
    return load_shared_weights(build_network(config), weights, "float32")


def continue_steps(
    config: Config,
    network_state: Mapping[str, torch.Tensor],
    loop_state: dict[str, Any],
    images: list[np.ndarray],
    labels: list[np.ndarray],
    steps_per_epoch: int,
    dtype: str,
) -> dict[str, Any]:
    """The training a torch engine resumes, one step per batch: the checkpoint's network, its
    optimizer and schedule state loaded as a resume loads them (optimizer first, then the
    schedule: the rate of the next step is the optimizer's), each step the plain loop's
    (`PlainTraining.step`, held to Lightning's step for step), float32 or float64."""
    config = with_overrides(config, {"train.precision": "float32"})
    torch.set_float32_matmul_precision("highest")
    network = build_network(config)
    network.load_state_dict(network_state)
    network = network.to(getattr(torch, dtype))
    plain = PlainTraining(network, config, steps_per_epoch)
    plain.load_state_dict(loop_state)  # moments cast to the parameters' dtype by torch
    network.train()
    losses = []
    for x, y in zip(images, labels):
        loss = plain.step(torch.from_numpy(x.astype(dtype)[:, None]), torch.from_numpy(y.astype(np.int64)))
        losses.append(float(loss.detach()))
    return {"loss": losses}
