#!/usr/bin/env python
"""Re-create the tiny generative demo models shipped in src/medrival/models/demo_weights/demo-*-vlm/ (synthetic,
CPU, a few minutes): a random-init tiny LLaVA per model (one shared vocabulary), instruction-pretrained on the
demo world's "pretrain" split (see medrival.models.vlm_pretrain).

    python scripts/pretrain_demo_vlms.py            # both models, default budget
    python scripts/pretrain_demo_vlms.py --only specialist --epochs 1 --per-modality 20 --out /tmp/w  # quick check

Same seed, same thread count, same package versions -> byte-identical files. One thread is the default: the
tiny model's ops take microseconds, and two threads mostly wait for each other (many times slower on a busy CPU).
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from medrival.models.demo_weights import WEIGHTS_DIR
from medrival.models.generative import load_generative_model
from medrival.models.tiny_generative import build_tiny_llava
from medrival.data.world.vlm_corpus import build_vlm_corpus, vocabulary_texts
from medrival.models.vlm_pretrain import (VLMPretrainConfig, adopt_clip_vision, clip_vision_architecture,
                                          match_clip_vision_config, pretrain_vlm)

# Images per modality: the generalist's 5 modalities (natural pictures with 3 questions each) and the
# specialist's 2 (about 6 questions per image) give similar numbers of examples per epoch.
PER_MODALITY = {"generalist": 800, "specialist": 600}
# The vision tower is the matching contrastive demo model's image tower (64 px, 16 px patches: 16 image tokens).
ARCHITECTURE = {**clip_vision_architecture()["sizes"], "text_width": 128, "text_layers": 3, "heads": 4}


def build_one(kind: str, out_dir: Path, texts: list[str], config: VLMPretrainConfig, per_modality: int) -> dict:
    folder = out_dir / f"demo-{kind}-vlm"
    if folder.exists():
        shutil.rmtree(folder)  # no stale file of an earlier layout survives
    build_tiny_llava(folder, texts, seed=config.seed, **ARCHITECTURE)
    match_clip_vision_config(folder)
    model = load_generative_model(None, str(folder), f"pretraining:{kind}", local_files_only=True)
    adopt_clip_vision(model, f"demo-{kind}-clip")
    corpus = build_vlm_corpus(kind, per_modality, seed=config.seed, size=ARCHITECTURE["image_size"])
    started = time.time()
    losses = pretrain_vlm(model, corpus, config, log=lambda line: print(f"[{kind}] {line}", flush=True))
    seconds = time.time() - started
    model.model.save_pretrained(folder, safe_serialization=True)
    for path in folder.iterdir():
        path.chmod(0o644)  # the weights file is written owner-only; shipped files must be readable by all
    size = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
    return {"model": kind, "images": len(corpus.images), "parameters": model.num_parameters(),
            "vocabulary": len(model.processor.tokenizer), "seconds": round(seconds, 1),
            "final_loss": round(losses[-1], 4), "bytes": size}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["generalist", "specialist"], help="build one model only")
    parser.add_argument("--epochs", type=int, default=VLMPretrainConfig.epochs)
    parser.add_argument("--per-modality", type=int, default=None, help="images per modality (default per model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (fixed for reproducibility)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = VLMPretrainConfig(epochs=args.epochs, seed=args.seed)
    texts = vocabulary_texts(seed=args.seed)
    for kind in [args.only] if args.only else ["generalist", "specialist"]:
        summary = build_one(kind, args.out, texts, config, args.per_modality or PER_MODALITY[kind])
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
