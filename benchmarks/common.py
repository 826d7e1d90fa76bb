"""Shared bits of the benchmark scripts: machine description and the full-size random-init model."""
from __future__ import annotations

import os
import platform
import time


def machine() -> dict:
    import torch

    info = {"machine": f"{platform.machine()} {os.cpu_count()} cpus", "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def best_of(repeats: int, run) -> float:
    """Fastest of ``repeats`` timed calls (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def full_size_vit_b16(device: str):
    """The OpenAI CLIP ViT-B/16 card's architecture at 224 px with random weights (no download), behind the
    project's open_clip adapter."""
    import open_clip

    from medrival.models.catalog import get_card
    from medrival.models.openclip_adapter import OpenClipModel

    card = get_card("clip-vit-b16")
    model, _, _ = open_clip.create_model_and_transforms(card.source.name, pretrained=None)
    adapter = OpenClipModel(card, model, open_clip.get_tokenizer(card.source.name),
                            open_clip.get_model_preprocess_cfg(model), f"random:{card.source.name}")
    return adapter.to(device)


def device_of(arguments) -> str:
    import torch

    return arguments.device or ("cuda" if torch.cuda.is_available() else "cpu")
