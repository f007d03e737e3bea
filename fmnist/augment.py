"""Training-batch augmentation, implemented once in numpy for every engine.

Parity needs both frameworks to train on the very same images, so augmentation happens here, on
the raw uint8 batch, before either framework sees it. Its randomness is a pure function of
(seed, epoch, batch index): not of worker processes, DDP ranks, call order, or which operations
are on (every draw is made whatever the config, so turning erasing on leaves the crops and flips
as they were). Everything is vectorised over the batch: one Generator, a few array operations.

The operations, in torchvision's usual order: random crop of the zero-padded image (a shift by
up to `crop_padding` pixels each way), horizontal flip, random erasing of one rectangle. All keep
the label, the shape, the dtype and the pixel range.
"""

from __future__ import annotations

import numpy as np

from fmnist.config import AugmentConfig

# Last entry of the Generator's seed: keeps this stream apart from the others drawn from
# (seed, epoch): epoch_permutation uses [seed, epoch], the dropout seeds [seed, epoch, 1].
_STREAM = 0x61756720  # "aug "


def batch_rng(seed: int, epoch: int, batch_index: int) -> np.random.Generator:
    """The augmentation stream of one global batch."""
    return np.random.default_rng([seed, epoch, batch_index, _STREAM])


def augment_batch(
    images: np.ndarray,
    config: AugmentConfig,
    seed: int,
    epoch: int,
    batch_index: int,
    positions: np.ndarray | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """Augment uint8 images (N, H, W) of training batch `batch_index` of `epoch`.

    A share of a global batch (one DDP rank's) passes its images' `positions` in the global batch
    and the global `batch_size`: the draws are made for the whole batch and the share takes its
    own, so the shares together equal the one-device batch. Returns `images` itself when nothing
    is enabled, else a new array.
    """
    if not config.enabled:
        return images
    n, height, width = images.shape
    total = n if batch_size is None else batch_size
    take = slice(None) if positions is None else positions
    rng = batch_rng(seed, epoch, batch_index)
    # All draws, always, in this order: (total,) each.
    pad = config.crop_padding
    top_left = rng.integers(0, 2 * pad + 1, size=(2, total))[:, take]
    flip = (rng.random(total) < config.flip)[take]
    erase = (rng.random(total) < config.erase)[take]
    area_u, ratio_u, top_u, left_u = rng.random((4, total))[:, take]

    out = images
    if pad > 0:
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (height, width), axis=(1, 2))
        out = windows[np.arange(n), top_left[0], top_left[1]]  # fancy indexing: a new array
    if config.flip > 0.0 and flip.any():
        out = np.where(flip[:, None, None], out[:, :, ::-1], out)
    if config.erase > 0.0 and erase.any():
        out = np.where(
            erase[:, None, None] & _erase_masks(config, area_u, ratio_u, top_u, left_u, height, width),
            np.uint8(config.erase_value),
            out,
        )
    return out if out is not images else images.copy()


def _erase_masks(
    config: AugmentConfig,
    area_u: np.ndarray,
    ratio_u: np.ndarray,
    top_u: np.ndarray,
    left_u: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    """(N, H, W) masks, one rectangle each: torchvision's RandomErasing in one vectorised try.

    Area uniform in `erase_scale` (fraction of the image), log aspect ratio uniform in
    `erase_ratio`, but clipped to what fits (torchvision retries instead), so the area stays
    in bounds up to rounding the sides to whole pixels.
    """
    image_area = height * width
    low, high = config.erase_scale
    area = image_area * (low + (high - low) * area_u)
    log_low, log_high = np.log(config.erase_ratio)
    log_ratio = log_low + (log_high - log_low) * ratio_u
    # h = sqrt(area * r) <= height and w = sqrt(area / r) <= width bound the ratio.
    log_ratio = np.clip(log_ratio, np.log(area / width**2), np.log(height**2 / area))
    h = np.clip(np.rint(np.sqrt(area * np.exp(log_ratio))), 1, height).astype(np.int64)
    w = np.clip(np.rint(np.sqrt(area / np.exp(log_ratio))), 1, width).astype(np.int64)
    top = (top_u * (height - h + 1)).astype(np.int64)
    left = (left_u * (width - w + 1)).astype(np.int64)
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    return ((rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])) & (
        (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None])
    )
