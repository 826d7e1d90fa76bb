#!/usr/bin/env python
"""Batched generation vs a batch-size-1 loop: same model, same questions, greedy decoding.

    .venv/bin/python benchmarks/generate.py                       # tiny LLaVA, CPU, batch 16
    .venv/bin/python benchmarks/generate.py --real-size --device cuda --questions 256 --batch-size 16

The tiny model is a random-init LLaVA of the demo's size built offline. ``--real-size`` builds a small real-size
random-init architecture instead (a ViT-B/16-sized vision tower at 224 px, 196 image tokens; a 16-layer 1024-wide Llama
decoder), the GPU target's setting. Questions are the demo world's x-ray VQA questions with the closed/open
prompts and answer lengths of ``vqa_zero_shot``. Both passes must return identical answers (checked).
Last line: JSON with batched_q_s, single_q_s and speedup (targets: >= 2 on CPU with the tiny model, >= 4 at batch 16
on a GPU with the real-size one).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import machine

TINY = dict(image_size=64, patch_size=8, vision_width=64, vision_layers=2, text_width=128, text_layers=3, heads=4)
REAL_SIZE = dict(image_size=224, patch_size=16, vision_width=768, vision_layers=12, text_width=1024,
                 text_layers=16, heads=16)


def _questions(count: int):
    from medrival.data.catalog import load_dataset
    from medrival.methods.vqa_answers import question_images, question_prompts

    split = load_dataset("demo-xray-vqa", "test", n=max(8, count // 4))
    rows = list(range(min(count, len(split))))
    prompts = question_prompts(split)
    limits = [4 if split.answer_types[i] == "closed" else 16 for i in rows]
    return question_images(split, rows), [prompts[i] for i in rows], limits


def _build(folder: Path, real_size: bool, device: str):
    import torch

    from medrival.data import world
    from medrival.core.prompts import TEMPLATES
    from medrival.models.generative import load_generative_model
    from medrival.models.tiny_generative import build_tiny_llava

    texts = [t.format(question="") for t in TEMPLATES.values()]
    texts += [f"{q} {a}" for attrs in world.render("xray", "train", 50, size=32).attrs
              for q, a, _ in world.questions("xray", attrs)]
    build_tiny_llava(folder, texts, seed=0, **(REAL_SIZE if real_size else TINY))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    return load_generative_model(None, str(folder), "benchmark:random", local_files_only=True, dtype=dtype).to(device)


def _timed(run) -> tuple[float, list[str]]:
    started = time.perf_counter()
    answers = run()
    return time.perf_counter() - started, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--real-size", action="store_true", help="small real-size random-init architecture")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = _build(Path(folder), args.real_size, args.device)
        images, prompts, limits = _questions(args.questions)
        model.generate(images[:2], prompts[:2], max_new_tokens=limits[:2], batch_size=2)  # warm-up
        batched_s, batched = _timed(lambda: model.generate(images, prompts, max_new_tokens=limits,
                                                           batch_size=args.batch_size))
        single_s, single = _timed(lambda: [model.generate([image], [prompt], max_new_tokens=limit)[0]
                                           for image, prompt, limit in zip(images, prompts, limits)])
    n = len(prompts)
    result = {"batched_q_s": round(n / batched_s, 2), "single_q_s": round(n / single_s, 2),
              "speedup": round(single_s / batched_s, 2), "identical_answers": batched == single,
              "questions": n, "batch_size": args.batch_size, "device": args.device,
              "model": "real-size random-init LLaVA" if args.real_size else "tiny random-init LLaVA",
              "parameters": model.num_parameters(), **machine()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
