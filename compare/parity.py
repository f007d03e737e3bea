"""`fmnist parity`: numerical proof that the Keras model and the torch network are the same math.

Three checks, in float32 and float64 on CPU with TF32 off, none needing a full training:
1. structure: per layer, output shape and parameter count equal;
2. weight transfer both ways: logits on test images agree to 1e-5 in float64, and in float32 to
   1e-5 or twice each framework's own float32 rounding, with identical predictions (batch-norm
   running statistics included, inference mode);
3. lockstep training: same initial weights, same batches, dropout off; the first step's
   gradients agree per tensor, and the per-step loss agrees over the first steps, for SGD with
   momentum and for Adam (the torch side runs `KerasAdam`); with batch norm, the running
   statistics after those steps agree too.
Loads both frameworks in one process: torch (with torch._dynamo) is imported before TensorFlow.

`run_parity` runs them all for one config. The parts: the checks (compare.parity_checks), what
they report (parity_result), the tolerance rule (parity_tolerance), loading the frameworks
(parity_frameworks).
"""

from __future__ import annotations

import numpy as np

from compare.parity_checks import check_structure, check_weight_transfer, lockstep, without_dropout
from compare.parity_frameworks import _frameworks
from compare.parity_result import ParityResult, format_table
from compare.parity_tolerance import compare_lockstep, float32_allowed
from fmnist.config import Config, OptimizerConfig, with_overrides
from fmnist.splits import Split

#: Besides run_parity, what the command and compare.bf16_parity / export_check import from here.
__all__ = [
    "ParityResult",
    "_frameworks",
    "compare_lockstep",
    "float32_allowed",
    "format_table",
    "lockstep",
    "run_parity",
    "without_dropout",
]


def run_parity(
    config: Config, images: np.ndarray, train: Split, steps: int = 10, batch_size: int = 128, sgd_lr: float = 0.01
) -> ParityResult:
    """Every check for one config; `images` are test images for the transfer check.

    The checks compare the math at float32 and float64, so a bf16-mixed config is checked at
    float32 (bfloat16's 8 bits of mantissa would hide every convention this checks)."""
    if config.train.precision != "float32":
        config = with_overrides(config, {"train.precision": "float32"})
    torch, keras = _frameworks()
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    result = ParityResult()
    check_structure(config, result)
    check_weight_transfer(config, images, result)
    optimizers = {
        "sgd_momentum": OptimizerConfig(name="sgd", lr=sgd_lr, momentum=0.9),
        "adam": config.train.optimizer if config.train.optimizer.name == "adam" else OptimizerConfig(name="adam"),
    }
    if config.train.optimizer.name == "adamw":  # decoupled weight decay: Keras' AdamW vs KerasAdam's
        optimizers["adamw"] = config.train.optimizer
    tol = 1e-5
    for label, opt in optimizers.items():
        cfg = without_dropout(config, opt)
        s = compare_lockstep(
            lockstep(cfg, train, steps, batch_size, "float32"), lockstep(cfg, train, steps, batch_size, "float64"), tol
        )
        result.lockstep[label] = s
        grads, loss = s["gradients"], s["loss"]
        result.add(
            f"lockstep {label}, float64: step-0 gradients, max |diff|",
            grads["float64_max_abs_diff"],
            tol,
            f"worst tensor {grads['float64_worst']}",
        )
        result.add(
            f"lockstep {label}, float64: loss over {steps} steps, max rel diff", max(loss["float64_rel_diff"]), tol
        )
        result.add(
            f"lockstep {label}, float32: step-0 gradients, max |diff|",
            grads["float32_max_abs_diff"][grads["float32_worst"]],
            grads["float32_allowed"],
            f"worst tensor {grads['float32_worst']}",
            passed=grads["float32_pass"],
        )
        worst_step = int(np.argmax(np.array(loss["float32_rel_diff"]) / np.array(loss["float32_allowed"])))
        result.add(
            f"lockstep {label}, float32: loss over {steps} steps, max rel diff",
            loss["float32_rel_diff"][worst_step],
            loss["float32_allowed"][worst_step],
            f"final loss Keras {loss['keras_float32'][-1]:.6f} vs torch {loss['torch_float32'][-1]:.6f}",
            passed=loss["float32_pass"],
        )
        if "running_stats" in s:
            bn = s["running_stats"]
            result.add(
                f"lockstep {label}, float64: batch-norm running statistics, max |diff|",
                bn["float64_max_abs_diff"],
                tol,
                f"worst {bn['float64_worst']}",
            )
            result.add(
                f"lockstep {label}, float32: batch-norm running statistics, max |diff|",
                bn["float32_max_abs_diff"][bn["float32_worst"]],
                bn["float32_allowed"],
                f"worst {bn['float32_worst']}",
                passed=bn["float32_pass"],
            )
    return result
