"""The tiny demo models' architecture and their compact on-disk form.

The demo models use open_clip's own ``CLIP`` class and tokenizer, so the adapter that serves them is the one that
serves real checkpoints. open_clip's tokenizer has 49,408 tokens but the synthetic corpora use a few hundred, and
the rows of tokens that never occur are zero from initialisation onward (pretraining zeroes them and they receive
no gradient). Storing only the used rows keeps both models under 5 MB; ``materialize`` rebuilds the full
``open_clip_config.json`` + ``open_clip_model.safetensors`` folder that open_clip's ``local-dir:`` loader reads.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from medrival.core.errors import MedrivalError

WEIGHTS_DIR = Path(__file__).parent / "demo_weights"
COMPACT_FILE = "compact.safetensors"
EMBEDDING_KEY = "token_embedding.weight"

TINY_MODEL_CFG: dict = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 96, "patch_size": 16, "head_width": 32,
                   "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 3,
                 "mlp_ratio": 2.0},
}
TINY_PREPROCESS_CFG: dict = {
    "size": 64, "mode": "RGB", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
    "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0,
}


def cache_root() -> Path:
    """Where derived files live; ``MEDRIVAL_CACHE_DIR`` overrides the per-user default."""
    return Path(os.environ.get("MEDRIVAL_CACHE_DIR", Path.home() / ".cache" / "medrival"))


def save_compact(state_dict: dict, folder: Path) -> Path:
    """Write a state dict keeping only the non-zero rows of the token embedding."""
    import torch
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items() if k != EMBEDDING_KEY}
    embedding = state_dict[EMBEDDING_KEY].detach().cpu()
    rows = torch.nonzero(embedding.abs().sum(dim=1) > 0).flatten()
    tensors["token_embedding.rows"] = rows.to(torch.int64)
    tensors["token_embedding.values"] = embedding[rows].contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / COMPACT_FILE
    save_file(tensors, str(path), metadata={"vocab_size": str(embedding.shape[0])})
    return path


def load_full_state_dict(path: Path) -> dict:
    """Inverse of ``save_compact``: the full state dict with zero rows for unused tokens."""
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        vocab_size = int(handle.metadata()["vocab_size"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    rows, values = tensors.pop("token_embedding.rows"), tensors.pop("token_embedding.values")
    embedding = torch.zeros(vocab_size, values.shape[1], dtype=values.dtype)
    embedding[rows] = values
    tensors[EMBEDDING_KEY] = embedding
    return tensors


def shipped_ids() -> list[str]:
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / COMPACT_FILE).is_file()) if WEIGHTS_DIR.is_dir() else []


def materialize(model_id: str) -> Path:
    """Full open_clip folder for a shipped demo model, built once per weights version in the cache."""
    from safetensors.torch import save_file

    compact = WEIGHTS_DIR / model_id / COMPACT_FILE
    if not compact.is_file():
        raise MedrivalError(
            f"Demo model weights {model_id!r} are not in the package (looked for {compact}). Available: "
            f"{', '.join(shipped_ids()) or 'none'}. Re-create them with `python scripts/pretrain_demo_models.py`.")
    digest = hashlib.sha256(compact.read_bytes()).hexdigest()[:16]
    target = cache_root() / "demo_models" / f"{model_id}-{digest}"
    if (target / "open_clip_model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_id}-", dir=target.parent))
    config = {"model_cfg": TINY_MODEL_CFG, "preprocess_cfg": TINY_PREPROCESS_CFG}
    (staging / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_file(load_full_state_dict(compact), str(staging / "open_clip_model.safetensors"))
    try:
        staging.rename(target)  # atomic: a concurrent or killed run never sees a half-written folder
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process won the race; its folder is complete
    return target
