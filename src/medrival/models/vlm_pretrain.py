"""Instruction pretraining of the tiny generative demo models (LLaVA architecture) on the synthetic demo world.

Both models share one word-level vocabulary built from the world's whole text inventory (captions, report
sentences, every VQA question and answer, the prompt templates and the diagnosis prompts with their class names),
so fine-tuning never meets an ``<unk>`` answer. Their training data differ, from the world's "pretrain" split
only (never train/val/test):

- generalist: "describe the image." -> a lay caption, for every modality and everyday shapes, plus generic
  yes/no and short-answer questions about the shapes, asked with the VQA prompt templates. It learns to answer
  questions in general but never sees a medical question.
- specialist: "describe the image." -> a report sentence, for x-ray and pathology only, plus the world's medical
  questions on those images (like LLaVA-Med: strong in its domain, never sees dermoscopy or fundus).

As LLaVA starts from a pretrained CLIP image encoder, each model's vision tower is the image tower of the matching
contrastive demo model (``demo-generalist-clip`` / ``demo-specialist-clip``, converted exactly to transformers'
``CLIPVisionModel``) and stays frozen; the projector and the language model are trained. (A random-init tower does
not learn the medical findings within a CPU budget: the closed questions stay at the majority answer.)

The corpora (what each model is taught) are built in ``medrival.data.world.vlm_corpus``; this module holds the
model side. Deterministic for a fixed seed and thread count: the same run writes byte-identical weights.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np



@dataclass
class VLMPretrainConfig:
    epochs: int = 4
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    seed: int = 0


# ----------------------------------------------------------------------------------------------- vision tower
def clip_vision_architecture() -> dict:
    """``build_tiny_llava`` sizes whose vision tower has the shape of the contrastive demo models' image tower,
    plus what its config must say beyond them (3 heads of 32, exact GELU) to compute as open_clip does."""
    from medrival.models.demo_weights import TINY_MODEL_CFG

    vision = TINY_MODEL_CFG["vision_cfg"]
    sizes = {"image_size": vision["image_size"], "patch_size": vision["patch_size"], "vision_width": vision["width"],
             "vision_layers": vision["layers"]}
    extra = {"num_attention_heads": vision["width"] // vision["head_width"], "hidden_act": "gelu"}
    return {"sizes": sizes, "vision_config": extra}


def match_clip_vision_config(folder: Path) -> None:
    """Rewrite the vision part of a ``build_tiny_llava`` folder's config.json to match open_clip's image tower
    (head count and activation change no weight shape)."""
    path = Path(folder) / "config.json"
    config = json.loads(path.read_text())
    config["vision_config"].update(clip_vision_architecture()["vision_config"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def clip_vision_weights(clip_id: str) -> dict:
    """The image tower of a shipped contrastive demo model, renamed to transformers' ``CLIPVisionModel``."""
    from medrival.models.demo_weights import COMPACT_FILE, WEIGHTS_DIR, load_full_state_dict

    state = {k[len("visual."):]: v for k, v in load_full_state_dict(WEIGHTS_DIR / clip_id / COMPACT_FILE).items()
             if k.startswith("visual.")}
    out = {"embeddings.class_embedding": state["class_embedding"],
           "embeddings.patch_embedding.weight": state["conv1.weight"],
           "embeddings.position_embedding.weight": state["positional_embedding"]}
    for ours, theirs in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
        out.update({f"{ours}.{p}": state[f"{theirs}.{p}"] for p in ("weight", "bias")})
    layers = sorted({int(k.split(".")[2]) for k in state if k.startswith("transformer.resblocks.")})
    for i in layers:
        block, layer = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
        for p in ("weight", "bias"):
            q, k, v = state[f"{block}attn.in_proj_{p}"].chunk(3)
            out.update({f"{layer}self_attn.q_proj.{p}": q, f"{layer}self_attn.k_proj.{p}": k,
                        f"{layer}self_attn.v_proj.{p}": v})
            for ours, theirs in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                                 ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[f"{layer}{ours}.{p}"] = state[f"{block}{theirs}.{p}"]
    return out


def adopt_clip_vision(model, clip_id: str) -> None:
    """Load a contrastive demo model's image tower into a ``GenerativeModel``'s vision tower and freeze it
    (as LLaVA starts from a pretrained CLIP and keeps it frozen)."""
    import torch

    prefix = model.module_groups()["vision"][0]
    tower = model.model.get_submodule(prefix)
    weights = clip_vision_weights(clip_id)
    target = tower.vision_model if hasattr(tower, "vision_model") else tower
    with torch.no_grad():
        target.load_state_dict(weights, strict=True)
    for parameter in tower.parameters():
        parameter.requires_grad_(False)


# ----------------------------------------------------------------------------------------------- training
def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def pretrain_vlm(model, corpus, config: VLMPretrainConfig, log=print) -> list[float]:
    """Train a ``GenerativeModel`` in place on ``corpus`` (a ``VLMCorpus``: ``images`` and ``examples(epoch,
    seed)``) with the answer-token loss, AdamW, warmup + cosine;
    returns the mean loss of each epoch."""
    import torch

    torch.manual_seed(config.seed)
    epochs = [corpus.examples(epoch, config.seed) for epoch in range(config.epochs)]
    total = sum(-(-len(triples) // config.batch_size) for triples in epochs)
    trainable = [(n, p) for n, p in model.model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in trainable if not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, total, int(total * config.warmup_fraction)))
    generator, losses = np.random.default_rng([config.seed, 31]), []
    model.model.train()
    for epoch, triples in enumerate(epochs):
        order, started, running = generator.permutation(len(triples)), time.time(), []
        for begin in range(0, len(order), config.batch_size):
            chunk = [triples[i] for i in order[begin:begin + config.batch_size]]
            batch = model.training_batch(corpus.images[[i for i, _, _ in chunk]], [p for _, p, _ in chunk],
                                         [a for _, _, a in chunk])
            loss = model.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running.append(loss.item())
        losses.append(float(np.mean(running)))
        log(f"epoch {epoch + 1}/{config.epochs}: {len(triples)} examples, loss {losses[-1]:.4f} "
            f"({time.time() - started:.1f}s)")
    model.model.eval()
    return losses
