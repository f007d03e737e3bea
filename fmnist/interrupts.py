"""Ctrl-C held back while a write that must finish whole is under way.

A checkpoint is two files written one after the other (the weights, then the epoch they belong
to); a KeyboardInterrupt between or inside them leaves a resume that cannot load, or one that
loads the wrong epoch's weights. Framework-free: signal handling only.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """SIGINT received inside the block is delivered, to the handler that was in place, once the
    block has ended. Only the main thread may set handlers: elsewhere (where no SIGINT lands
    anyway) the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        signal.raise_signal(signal.SIGINT)
