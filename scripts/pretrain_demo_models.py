#!/usr/bin/env python
"""Re-create the tiny demo models shipped in src/medrival/models/demo_weights/ (synthetic, CPU, minutes).

    python scripts/pretrain_demo_models.py            # both models, default budget
    python scripts/pretrain_demo_models.py --only specialist --epochs 2 --out /tmp/w   # quick check

Same seed, same thread count, same package versions -> byte-identical weight files.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from medrival.data.world.corpus import build_corpus
from medrival.models.demo_weights import TINY_MODEL_CFG, TINY_PREPROCESS_CFG, WEIGHTS_DIR, save_compact
from medrival.models.openclip_adapter import preprocess_images
from medrival.models.pretrain import PretrainConfig, pretrain

PER_MODALITY = {"generalist": 3000, "specialist": 6000}  # same total images seen per epoch, roughly


def build_one(kind: str, out_dir: Path, config: PretrainConfig, per_modality: int) -> dict:
    import open_clip

    torch.manual_seed(config.seed)
    model = open_clip.CLIP(**TINY_MODEL_CFG)
    tokenizer = open_clip.SimpleTokenizer(context_length=TINY_MODEL_CFG["text_cfg"]["context_length"])
    corpus = build_corpus(kind, per_modality, seed=config.seed)
    started = time.time()
    losses = pretrain(model, lambda x: preprocess_images(x, TINY_PREPROCESS_CFG), tokenizer, corpus, config,
                      log=lambda line: print(f"[{kind}] {line}", flush=True))
    path = save_compact(model.state_dict(), out_dir / f"demo-{kind}-clip")
    return {"model": kind, "images": len(corpus.images), "seconds": round(time.time() - started, 1),
            "final_loss": round(losses[-1], 4), "bytes": path.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["generalist", "specialist"], help="build one model only")
    parser.add_argument("--epochs", type=int, default=PretrainConfig.epochs)
    parser.add_argument("--per-modality", type=int, default=None, help="images per modality (default per model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (fixed for reproducibility)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = PretrainConfig(epochs=args.epochs, seed=args.seed)
    for kind in [args.only] if args.only else ["generalist", "specialist"]:
        summary = build_one(kind, args.out, config, args.per_modality or PER_MODALITY[kind])
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
