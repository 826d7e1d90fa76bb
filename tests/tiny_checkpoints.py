"""Tiny random-init checkpoints written in exactly the layouts the Hugging Face Hub uses, for offline tests.

- open_clip repos: ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) + ``open_clip_model.safetensors``;
  a BiomedCLIP-style repo names its Hugging Face text tower in ``text_cfg.hf_model_name``.
- transformers repos: ``save_pretrained`` folders of CLIPModel / SiglipModel with their tokenizer and image
  processor (CLIP: a byte-level BPE tokenizer; SigLIP: a sentencepiece ``spiece.model``).
- the Hub cache: ``models--org--name/{blobs,snapshots/<commit>,refs/main}`` with snapshot files linked to blobs.

Widths and depths are shrunk; image size, patch size, context length and activation follow the real checkpoint.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

SENTENCES = ["a chest x-ray showing pneumonia.", "normal lungs", "a dermoscopy image of melanoma.",
             "pink pattern with small purple dots", "fundus photograph of the retina",
             "histopathology slide of a tumour"]


# ----------------------------------------------------------------------------------------------- the Hub cache
def put_in_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str | None = None) -> Path:
    """Copy ``folder`` into ``cache`` as huggingface_hub stores a downloaded repo; returns the snapshot folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    digest = hashlib.sha1(repo_id.encode())
    for path in files:
        digest.update(path.read_bytes())
    commit = commit or digest.hexdigest()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for path in files:
        blob = repo / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


# ----------------------------------------------------------------------------------------------- open_clip
def tiny_open_clip_cfg(name: str) -> dict:
    """A built-in open_clip config shrunk in width and depth, keeping image/patch size, context and activation."""
    import open_clip

    cfg = copy.deepcopy(open_clip.get_model_config(name))
    cfg["embed_dim"] = 16
    cfg["vision_cfg"].update(width=32, layers=1, head_width=16, mlp_ratio=2.0)
    cfg["text_cfg"].update(width=32, heads=2, layers=1, mlp_ratio=2.0)
    return cfg


def save_open_clip(folder: Path, model_cfg: dict, preprocess_cfg: dict, seed: int = 0, build_cfg: dict | None = None):
    """Build the open_clip model ``build_cfg`` (default ``model_cfg``) describes and save it with ``model_cfg``."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    build = copy.deepcopy(build_cfg or model_cfg)
    model_class = open_clip.CustomTextCLIP if "hf_model_name" in build.get("text_cfg", {}) else open_clip.CLIP
    model = model_class(**build)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return model


def save_tiny_bert(folder: Path, max_positions: int = 512):
    """A tiny BERT config and WordPiece tokenizer (the text-tower files of a BiomedCLIP-style checkpoint)."""
    from transformers import BertConfig, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({w.strip(".") for s in SENTENCES for w in s.replace("-", " ").split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz.-", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(str(folder))
    BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64, max_position_embeddings=max_positions).save_pretrained(str(folder))
    return folder


def register_tiny_timm(timm_model: str) -> str:
    """Register a tiny version of timm model ``timm_model`` (same image and patch size; width 32, one block)."""
    import timm
    from timm.models import register_model

    name = f"medrival_tiny__{timm_model}"
    if not timm.is_model(name):
        def build(pretrained=False, **kwargs):
            return timm.create_model(timm_model, pretrained=False, embed_dim=32, depth=1, num_heads=2,
                                     mlp_ratio=2.0, **kwargs)
        build.__name__ = build.__qualname__ = name  # timm registers a model under its entrypoint's name
        register_model(build)
    return name


def biomedclip_style_cfgs(text_tower: str, bert_folder: Path, context_length: int = 256,
                          timm_model: str = "vit_base_patch16_224") -> tuple[dict, dict]:
    """(config as published, naming the text tower ``text_tower``; config to build with, naming ``bert_folder``)."""
    vision = {"timm_model_name": register_tiny_timm(timm_model), "timm_model_pretrained": False, "timm_pool": "",
              "timm_proj": "linear", "image_size": 224}
    text = {"hf_model_name": text_tower, "hf_tokenizer_name": text_tower, "hf_proj_type": "mlp",
            "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": context_length}
    published = {"embed_dim": 16, "vision_cfg": vision, "text_cfg": text}
    build = copy.deepcopy(published)
    build["text_cfg"].update(hf_model_name=str(bert_folder), hf_tokenizer_name=str(bert_folder),
                             hf_model_pretrained=False)
    return published, build


# ----------------------------------------------------------------------------------------------- transformers
def tiny_clip_tokenizer():
    """A byte-level BPE CLIPTokenizer over every byte plus a few merges (the real vocabulary has 49,408)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    merges = [("n", "o"), ("no", "r"), ("l", "u"), ("c", "h"), ("ch", "e")]
    for left, right in merges:
        vocab[left + right] = len(vocab)
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges)


def tiny_siglip_tokenizer(folder: Path):
    """A SigLIP tokenizer over a sentencepiece model trained on a few sentences (written to ``folder``)."""
    import sentencepiece
    from transformers import SiglipTokenizer

    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 5), model_writer=buffer, vocab_size=60, model_type="unigram",
        unk_id=2, eos_id=1, pad_id=0, bos_id=-1, hard_vocab_limit=False, minloglevel=2)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(buffer.getvalue())
    return SiglipTokenizer(vocab_file=str(folder / "spiece.model"))


def save_tiny_transformers(folder: Path, model_class: str, image_size: int, patch_size: int,
                           context_length: int, seed: int = 0):
    """``save_pretrained`` folder of a tiny CLIPModel / SiglipModel with tokenizer and default image processor."""
    import torch
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig, SiglipImageProcessor,
                              SiglipModel)

    torch.manual_seed(seed)
    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    vision = dict(tower, image_size=image_size, patch_size=patch_size)
    if model_class == "CLIPModel":
        tokenizer = tiny_clip_tokenizer()
        ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
        text = dict(tower, vocab_size=len(tokenizer), max_position_embeddings=context_length, **ids)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                       crop_size={"height": image_size, "width": image_size})
    else:
        tokenizer = tiny_siglip_tokenizer(folder / "spm")
        text = dict(tower, vocab_size=len(tokenizer), max_position_embeddings=context_length,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    shutil.rmtree(folder / "spm", ignore_errors=True)
    return model, tokenizer, processor
