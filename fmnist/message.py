"""The one wire format between the project's processes (`fmnist.job`): a message is a tree of
JSON values (dicts, lists, strings, numbers) whose numpy arrays travel beside it, all in one
.npz file. No pickle: reading a message never runs code, whichever host wrote it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

_ARRAY = "__array__"
_SKELETON = "__skeleton__"


def _pack(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(tree, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = tree
        return {_ARRAY: key}
    if isinstance(tree, dict):
        return {str(k): _pack(v, arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_pack(v, arrays) for v in tree]
    if isinstance(tree, np.generic):
        return tree.item()
    if isinstance(tree, Path):
        return str(tree)
    return tree


def _unpack(tree: Any, arrays: Any) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {_ARRAY}:
            return arrays[tree[_ARRAY]]
        return {k: _unpack(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unpack(v, arrays) for v in tree]
    return tree


def message_bytes(tree: Any) -> bytes:
    """`tree` as the bytes of a message file (for a job's inputs shipped to another host)."""
    arrays: dict[str, np.ndarray] = {}
    skeleton = _pack(tree, arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{_SKELETON: np.array(json.dumps(skeleton))})
    return buffer.getvalue()


def write_message(path: Path, tree: Any) -> None:
    Path(path).write_bytes(message_bytes(tree))


def read_message(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return _unpack(json.loads(str(arrays.pop(_SKELETON))), arrays)
