#!/usr/bin/env python
"""A 50-epoch linear probe on cached features against the same probe recomputing frozen features every epoch.

    .venv/bin/python benchmarks/linear_probe.py               # demo model, demo-xray
    .venv/bin/python benchmarks/linear_probe.py --full-size   # random-init ViT-B/16 at 224 px, demo-xray at 224 px

Recomputing is what a training loop does when the frozen encoder sits inside it (the encoder runs under no_grad
on every batch, every epoch). Both variants run the same seeded loop (same batches, optimiser and validation-based
epoch choice); only where the features come from differs, so their test AUROCs should agree.
Last line: JSON with cached_s, recompute_s, speedup (target >= 10) and auroc_delta (target <= 0.01).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import device_of, full_size_vit_b16, machine


def encode(model, images):
    import torch

    with torch.no_grad():
        return model.image_features(model.preprocess(images)).float()


def probe(model, splits, feature_of, epochs: int, seed: int = 0) -> float:
    """Train a linear head for ``epochs`` on features given by ``feature_of(split, rows)``; test AUROC."""
    import torch

    from medrival.methods.torch_heads import Schedule, train_with_validation
    from medrival.metrics import compute_classification_metrics

    train, val, test = splits
    torch.manual_seed(seed)
    head = torch.nn.Linear(model.embed_dim, train.info.num_classes).to(model.device)
    labels = torch.as_tensor(train.labels, device=model.device)

    def batch_loss(rows):
        return torch.nn.functional.cross_entropy(head(feature_of(train, rows.numpy())), labels[rows])

    def auroc(split) -> float:
        with torch.no_grad():
            probabilities = head(feature_of(split, np.arange(len(split)))).softmax(-1).cpu().numpy()
        return compute_classification_metrics(split.info.task, split.labels, probabilities)["auroc"]

    schedule = Schedule(epochs=epochs, lr=1e-3, weight_decay=1e-4, batch_size=64)
    train_with_validation(list(head.parameters()), batch_loss, len(train), lambda: (auroc(val), None), schedule, seed)
    return auroc(test)


def setup(arguments):
    from medrival.data.catalog import load_dataset
    from medrival.models.factory import create_model

    size = 224 if arguments.full_size else 64
    model = full_size_vit_b16(device_of(arguments)) if arguments.full_size else \
        create_model("demo-generalist-clip").to(device_of(arguments))
    sizes = {"train": arguments.n_train, "val": arguments.n_train // 2, "test": arguments.n_train}
    splits = [load_dataset("demo-xray", s, n=sizes[s], size=size) for s in ("train", "val", "test")]
    return model, splits


def main() -> None:
    import torch

    from medrival.methods.features import FeatureCache

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--device", default=None)
    arguments = parser.parse_args()
    model, splits = setup(arguments)

    started = time.perf_counter()
    cache = FeatureCache(None)
    cached = {id(s): torch.from_numpy(cache.image_features(model, s)).to(model.device) for s in splits}
    cached_auroc = probe(model, splits, lambda split, rows: cached[id(split)][rows], arguments.epochs)
    cached_s = time.perf_counter() - started

    started = time.perf_counter()
    recompute_auroc = probe(model, splits, lambda split, rows: encode(model, split.images[rows]), arguments.epochs)
    recompute_s = time.perf_counter() - started

    result = {"cached_s": round(cached_s, 3), "recompute_s": round(recompute_s, 3),
              "speedup": round(recompute_s / cached_s, 1), "auroc_cached": round(cached_auroc, 4),
              "auroc_recompute": round(recompute_auroc, 4), "auroc_delta": round(abs(cached_auroc - recompute_auroc), 4),
              "epochs": arguments.epochs, "n_train": len(splits[0]), "device": str(model.device),
              "model": "random ViT-B/16 224px" if arguments.full_size else "demo-generalist-clip", **machine()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
