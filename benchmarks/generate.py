#!/usr/bin/env python
"""Batched generation vs a batch-size-1 loop: same model, same questions, greedy decoding.

    .venv/bin/python benchmarks/generate.py                       # tiny LLaVA, CPU, batch 16
    .venv/bin/python benchmarks/generate.py --real-size --device cuda --questions 256 --batch-size 16

The tiny model is a random-init LLaVA of the demo's size built offline. ``--real-size`` builds a small real-size
random-init architecture instead (a ViT-B/16-sized vision tower at 224 px, 196 image tokens; a 16-layer 1024-wide Llama
decoder), the GPU target's setting. Questions are the demo world's x-ray VQA questions with the closed/open
prompts and answer lengths of ``vqa_zero_shot``. Both passes must return identical answers (checked).
Then, on the LLaVA-1.5 layout (336 px images at patch 14: 576 image tokens; narrow random-init widths so it runs
on a CPU) and a SLAKE-shaped mix (11 questions per image, 8 open with up to 16 new tokens, 3 yes/no with 4), the
same questions go through the plain path (every question filled in full) and the shared path (each image's
prefix filled once); and their yes/no options scored in K passes vs one pass (4 options).

Last line: JSON with batched_q_s, single_q_s and speedup (targets: >= 2 on CPU with the tiny model, >= 4 at batch 16
on a GPU with the real-size one); plain_q_s, shared_q_s, prefix_speedup (target >= 3) and shared_identical_answers
(identical_answers: both comparisons gave identical answers);
option_k_pass_s, option_one_pass_s, option_speedup (target >= 2.5) and max_logprob_diff (<= 1e-5).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import machine

# LLaVA-1.5's geometry (CLIP ViT at 336 px, patch 14 -> 576 image tokens), widths cut so that a CPU runs it
LLAVA15_LAYOUT = dict(image_size=336, patch_size=14, vision_width=256, vision_layers=4, text_width=512, text_layers=4,
                      heads=4)
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

    texts = [t.replace("{question}", "").replace("{options}", "") for t in TEMPLATES.values()]
    texts += [f"{q} {a}" for attrs in world.render("xray", "train", 50, size=32).attrs
              for q, a, _ in world.questions("xray", attrs)]
    build_tiny_llava(folder, texts, seed=0, **(REAL_SIZE if real_size else TINY))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    return load_generative_model(None, str(folder), "benchmark:random", local_files_only=True, dtype=dtype).to(device)


def _slake_like(images: int, seed: int = 0):
    """``images`` random 336 px images with 11 questions each (8 open, 3 yes/no), questions drawn from the demo
    world's x-ray VQA set with vqa_zero_shot's prompts and token limits."""
    import numpy as np

    from medrival.data.catalog import load_dataset
    from medrival.methods.vqa_answers import question_prompts

    split = load_dataset("demo-xray-vqa", "test", n=40)
    prompts = question_prompts(split)
    opened = [i for i, form in enumerate(split.forms) if form == "open"]
    closed = [i for i, form in enumerate(split.forms) if form == "yes_no"]
    rng = np.random.default_rng(seed)
    pictures, questions, limits = [], [], []
    for _ in range(images):
        picture = rng.integers(0, 256, (336, 336, 3), dtype=np.uint8)
        for row, limit in [(i, 16) for i in rng.choice(opened, 8)] + [(i, 4) for i in rng.choice(closed, 3)]:
            pictures.append(picture)
            questions.append(prompts[row])
            limits.append(limit)
    vocabulary = list(prompts) + list(split.answers) + ["yes", "no"]
    return pictures, questions, limits, vocabulary


def _sharing(images: int, batch_size: int) -> dict:
    """Plain vs shared prefixes and K-pass vs one-pass option scoring on the LLaVA-1.5 layout."""
    import numpy as np

    from medrival.models.generative import load_generative_model
    from medrival.models.tiny_generative import build_tiny_llava

    pictures, questions, limits, vocabulary = _slake_like(images)
    with tempfile.TemporaryDirectory() as folder:
        build_tiny_llava(Path(folder), vocabulary, seed=0, **LLAVA15_LAYOUT)
        model = load_generative_model(None, folder, "benchmark:llava15-layout", local_files_only=True)
    model.generate(pictures[:2], questions[:2], max_new_tokens=2)  # warm-up
    model.share_image_prefix = False
    plain_s, plain = _timed(lambda: model.generate(pictures, questions, max_new_tokens=limits, batch_size=batch_size))
    model.share_image_prefix = True
    shared_s, shared = _timed(lambda: model.generate(pictures, questions, max_new_tokens=limits,
                                                     batch_size=batch_size))
    options = ["yes", "no", "left", "right"]
    model.one_pass_options = False
    k_pass_s, k_pass = _timed(lambda: model.score_options(pictures, questions, options, batch_size=batch_size))
    model.one_pass_options = True
    one_pass_s, one_pass = _timed(lambda: model.score_options(pictures, questions, options, batch_size=batch_size))
    n = len(questions)
    return {"plain_q_s": round(n / plain_s, 2), "shared_q_s": round(n / shared_s, 2),
            "prefix_speedup": round(plain_s / shared_s, 2), "shared_identical_answers": plain == shared,
            "option_k_pass_s": round(k_pass_s, 2), "option_one_pass_s": round(one_pass_s, 2),
            "option_speedup": round(k_pass_s / one_pass_s, 2),
            "max_logprob_diff": float(np.abs(np.asarray(k_pass) - np.asarray(one_pass)).max()),
            "sharing_questions": n, "sharing_images": images, "image_tokens": 576,
            "sharing_parameters": model.num_parameters()}


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
    parser.add_argument("--sharing-images", type=int, default=8, help="images (11 questions each) of the "
                        "prefix-sharing comparison; 0 skips it")
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
              "parameters": model.num_parameters(),
              **(_sharing(args.sharing_images, args.batch_size) if args.sharing_images else {}), **machine()}
    # one flag for both comparisons: batched = batch-size-1 answers, and shared-prefix = plain answers
    result["identical_answers"] = result["identical_answers"] and result.get("shared_identical_answers", True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
