"""Method checkpoints as data: arrays in ``state.safetensors`` and everything else in ``method.json``.

No pickle anywhere: a checkpoint can be inspected with any safetensors/JSON reader and loading it runs no code.
``method.json`` holds the method name, its full config and the hyperparameters chosen on validation, so a loaded
method predicts exactly as the fitted one did.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from medrival.core.errors import ConfigError, DataError

STATE_FILE = "state.safetensors"
META_FILE = "method.json"


def _as_array(value: Any) -> np.ndarray:
    """NumPy copy of an array or torch tensor (moved to the CPU), contiguous as safetensors requires."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value)


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temp, path)


def save_checkpoint(directory: str | Path, method: str, config: Any, chosen: dict[str, Any],
                    arrays: dict[str, Any]) -> Path:
    """Write a method's arrays and metadata into ``directory`` (created if needed); returns the directory."""
    from safetensors.numpy import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: _as_array(value) for name, value in arrays.items()}
    _write_atomically(directory / STATE_FILE, save(tensors))
    meta = {"method": method, "config": dataclasses.asdict(config), "chosen": chosen}
    _write_atomically(directory / META_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
    return directory


def load_checkpoint(directory: str | Path, method: str, config_class: type) -> tuple[Any, dict, dict]:
    """(config, chosen hyperparameters, arrays) of a checkpoint written by ``save_checkpoint`` for ``method``."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    meta_path, state_path = directory / META_FILE, directory / STATE_FILE
    if not meta_path.is_file() or not state_path.is_file():
        raise DataError(f"{directory} is not a medrival method checkpoint: it needs {META_FILE} and {STATE_FILE}; "
                        "write one with method.save(directory).")
    meta = json.loads(meta_path.read_text())
    if meta.get("method") != method:
        raise ConfigError(f"checkpoint {directory} holds method {meta.get('method')!r}, not {method!r}; "
                          f"load it with the {meta.get('method')!r} method's load().")
    return config_class(**meta["config"]), meta["chosen"], load_file(str(state_path))
