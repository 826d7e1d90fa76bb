"""The demo models' pretraining: deterministic (re-running reproduces the weights byte for byte) and compact."""
from __future__ import annotations

import hashlib

import open_clip
import torch

from medrival.data.world.corpus import build_corpus
from medrival.models.demo_weights import (TINY_MODEL_CFG, TINY_PREPROCESS_CFG, WEIGHTS_DIR, load_full_state_dict,
                                          save_compact)
from medrival.models.openclip_adapter import preprocess_images
from medrival.models.pretrain import PretrainConfig, pretrain


def _train(tmp_path, name, epochs=2):
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_MODEL_CFG)
    tokenizer = open_clip.SimpleTokenizer(context_length=TINY_MODEL_CFG["text_cfg"]["context_length"])
    corpus = build_corpus("specialist", 48, seed=0)
    losses = pretrain(model, lambda x: preprocess_images(x, TINY_PREPROCESS_CFG), tokenizer, corpus,
                      PretrainConfig(epochs=epochs, batch_size=32, warmup_steps=2), log=lambda _: None)
    path = save_compact(model.state_dict(), tmp_path / name)
    return model, tokenizer, corpus, losses, path


def test_pretraining_is_reproducible_byte_for_byte(tmp_path):
    *_, first = _train(tmp_path, "a")
    *_, second = _train(tmp_path, "b")
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()


def test_only_corpus_tokens_have_embeddings_and_compaction_round_trips(tmp_path):
    model, tokenizer, corpus, losses, path = _train(tmp_path, "c", epochs=3)
    assert losses[-1] < losses[0]
    used = set(torch.cat([tokenizer(corpus.captions(e, 0)) for e in range(3)]).unique().tolist()) - {0}
    nonzero = set(torch.nonzero(model.token_embedding.weight.abs().sum(1) > 0).flatten().tolist())
    assert nonzero == used
    restored = load_full_state_dict(path)
    for key, value in model.state_dict().items():
        assert torch.equal(restored[key], value), key


def test_shipped_demo_weights_are_small():
    files = list(WEIGHTS_DIR.glob("*/compact.safetensors"))
    assert len(files) == 2
    assert sum(f.stat().st_size for f in files) <= 5 * 1024 * 1024
