#!/usr/bin/env python
"""Image-encoding pipeline (uint8 images -> preprocessing -> forward) against the bare forward pass.

    .venv/bin/python benchmarks/encode.py                 # the demo model on demo-world images
    .venv/bin/python benchmarks/encode.py --full-size     # random-init ViT-B/16 at 224 px on 256 px images

Both sides use the same model, batch size and images; the forward side gets pixels preprocessed beforehand.
Last line: JSON with pipeline_img_s, forward_img_s and ratio = pipeline / forward (target >= 0.9).
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from common import best_of, device_of, full_size_vit_b16, machine


def setup(arguments):
    if arguments.full_size:
        model = full_size_vit_b16(device_of(arguments))
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(arguments.n or 64, 256, 256, 3), dtype=np.uint8)
        return model, images
    from medrival.data.catalog import load_dataset
    from medrival.models.factory import create_model

    model = create_model("demo-generalist-clip").to(device_of(arguments))
    return model, load_dataset("demo-xray", "test", n=arguments.n or 2048).images


def main() -> None:
    import torch

    from medrival.models.encoding import encode_in_batches

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true", help="random-init ViT-B/16 at 224 px")
    parser.add_argument("--n", type=int, default=None, help="number of images")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=7)
    arguments = parser.parse_args()
    model, images = setup(arguments)
    batch = arguments.batch_size or (32 if arguments.full_size else 256)
    pixels = [model.preprocess(images[s:s + batch]) for s in range(0, len(images), batch)]

    def forward():
        with torch.inference_mode():
            for chunk in pixels:
                model.image_features(chunk).float().cpu()

    def pipeline():
        encode_in_batches(model, images, batch)

    pipeline()  # warm-up: allocator, kernels
    # Interleaved, fastest of each: both sides see the same machine state (other load, clock changes).
    forward_s, pipeline_s = [min(times) for times in zip(*[(best_of(1, forward), best_of(1, pipeline))
                                                            for _ in range(arguments.repeats)])]
    result = {"pipeline_img_s": round(len(images) / pipeline_s, 1), "forward_img_s": round(len(images) / forward_s, 1),
              "ratio": round(forward_s / pipeline_s, 3), "n_images": len(images), "batch_size": batch,
              "model": "random ViT-B/16 224px" if arguments.full_size else "demo-generalist-clip",
              "image_size": int(images.shape[1]), "device": str(model.device), **machine()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
