"""What a training prints while it runs, the same in every engine.

On a terminal each framework shows its own live progress bar (Lightning's counting epochs from 1,
as Keras' does). Written to a file or a pipe (CI, `nohup`, `| tee`) a bar leaves only its last
frame, so there every engine prints one line per finished epoch instead, from here: the same
fields, the same numbering.
"""

from __future__ import annotations

import sys


def live() -> bool:
    """True when stdout is a terminal: a live progress bar is worth drawing there."""
    return sys.stdout.isatty()


def epoch_line(row: dict[str, float], epochs: int) -> str:
    """One finished epoch (a metrics.csv row) as a line of the log."""
    return (
        f"Epoch {row['epoch']}/{epochs} - {row['seconds']:.1f}s - loss {row['train_loss']:.4f}"
        f" - accuracy {row['train_accuracy']:.4f} - val_loss {row['val_loss']:.4f}"
        f" - val_accuracy {row['val_accuracy']:.4f} - lr {row['lr']:.3g}"
    )
