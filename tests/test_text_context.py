"""CoOp's text encoding with learnable context, on every supported text tower.

The proof that the context lands in the right place: with the context set to the token embeddings of "a photo of
a", ``encode_with_context`` must give what the model's own ``encode_texts`` gives for "a photo of a <class>"
(same masks, pooling and projection), and gradients must reach the context. Towers: open_clip CLIP (the demo
model), open_clip CustomTextCLIP with its own TextTransformer and with a Hugging Face BERT tower (BiomedCLIP's
layout), and transformers CLIPModel / SiglipModel; all random-init and tiny, built here.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medrival.core.errors import MedrivalError
from medrival.models.factory import create_model
from medrival.models.openclip_adapter import OpenClipModel
from medrival.models.text_context import encode_with_context, phrase_embeddings, token_embedding_layer

CLASS_TEXTS = ["normal", "pneumonia", "benign tumor"]
WORDS = ["a", "photo", "of", "x", "normal", "pneumonia", "benign", "tumor", "the", "*", "scan"]
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
               "image_size": 32, "patch_size": 16}


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    """A tiny BERT config + WordPiece tokenizer, saved as a Hub text tower folder is laid out."""
    from transformers import BertConfig, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "."]) + "\n")
    BertTokenizer(str(vocab)).save_pretrained(folder)
    BertConfig(vocab_size=len(WORDS) + 6, max_position_embeddings=16, **TINY_TEXT).save_pretrained(folder)
    return folder


def _check_reproduces_plain_text(adapter, atol=1e-5):
    phrase = phrase_embeddings(adapter, "a photo of a")
    assert phrase.shape == (4, token_embedding_layer(adapter).weight.shape[1])
    context = phrase.clone().requires_grad_(True)
    spliced = encode_with_context(adapter, context, CLASS_TEXTS)
    expected = adapter.encode_texts([f"a photo of a {text}" for text in CLASS_TEXTS])
    np.testing.assert_allclose(spliced.detach().float().cpu().numpy(), expected.numpy(), atol=atol)
    spliced[:, 0].sum().backward()
    assert context.grad is not None and float(context.grad.abs().sum()) > 0
    # A different context gives different prompts: the context is really used.
    moved = encode_with_context(adapter, phrase + 0.5 * torch.randn_like(phrase), CLASS_TEXTS).detach()
    assert float((moved.cpu() - expected).abs().max()) > 1e-3
    return context


@pytest.fixture(scope="module")
def demo_model():
    return create_model("demo-specialist-clip")


def test_open_clip_clip_reproduces_the_plain_prompt_and_trains_the_context(demo_model):
    model = demo_model
    before = {name: p.detach().clone() for name, p in model.model.named_parameters()}
    _check_reproduces_plain_text(model)
    assert all(torch.equal(p, before[name]) for name, p in model.model.named_parameters())


def test_class_specific_context_gives_each_class_its_own_prompt(demo_model):
    model = demo_model
    phrase = phrase_embeddings(model, "a photo of a")
    other = phrase_embeddings(model, "the scan of a")
    context = torch.stack([phrase, other, phrase])  # classes x n_ctx x width
    spliced = encode_with_context(model, context, CLASS_TEXTS).detach().numpy()
    expected = model.encode_texts(["a photo of a normal", "the scan of a pneumonia", "a photo of a benign tumor"])
    np.testing.assert_allclose(spliced, expected.numpy(), atol=1e-5)
    with pytest.raises(MedrivalError, match="one n_ctx x width block per class"):
        encode_with_context(model, context[:2], CLASS_TEXTS)


def test_prompt_longer_than_the_context_length_is_a_clear_error(demo_model):
    with pytest.raises(MedrivalError, match="n_ctx"):  # the demo model's context length is 32 tokens
        encode_with_context(demo_model, torch.zeros(30, 64), ["a very long class description"])


def _open_clip_custom(text_cfg: dict, tokenizer) -> OpenClipModel:
    from open_clip.model import CustomTextCLIP

    torch.manual_seed(0)
    vision = {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16}
    model = CustomTextCLIP(embed_dim=24, vision_cfg=vision, text_cfg=text_cfg)
    preprocess = {"size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
    return OpenClipModel(None, model, tokenizer, preprocess, "tiny-custom")


def test_open_clip_custom_text_tower_with_bert_reproduces_the_plain_prompt(bert_folder):
    from open_clip.hf_model import HFTextEncoder
    from open_clip.tokenizer import HFTokenizer

    text_cfg = {"hf_model_name": str(bert_folder), "hf_tokenizer_name": str(bert_folder), "hf_model_pretrained": False,
                "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 16}
    adapter = _open_clip_custom(text_cfg, HFTokenizer(str(bert_folder), context_length=16))
    assert isinstance(adapter.model.text, HFTextEncoder)
    _check_reproduces_plain_text(adapter)


def test_open_clip_custom_text_transformer_reproduces_the_plain_prompt():
    from open_clip.tokenizer import SimpleTokenizer

    text_cfg = {"context_length": 20, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}
    _check_reproduces_plain_text(_open_clip_custom(text_cfg, SimpleTokenizer(context_length=20)))


def _transformers_adapter(kind: str, bert_folder):
    from transformers import BertTokenizer, CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    from medrival.models.transformers_adapter import TransformersClipModel

    tokenizer = BertTokenizer.from_pretrained(bert_folder)
    text = {**TINY_TEXT, "vocab_size": tokenizer.vocab_size, "max_position_embeddings": 16,
            "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.sep_token_id}
    torch.manual_seed(0)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=TINY_VISION, projection_dim=24))
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=TINY_VISION))
    preprocess = {"size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "squash"}
    return TransformersClipModel(None, model, tokenizer, preprocess, f"tiny-{kind}")


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_transformers_towers_reproduce_the_plain_prompt(kind, bert_folder):
    adapter = _transformers_adapter(kind, bert_folder)
    assert type(adapter.model).__name__ == {"clip": "CLIPModel", "siglip": "SiglipModel"}[kind]
    _check_reproduces_plain_text(adapter)


def test_unsupported_text_tower_names_coop_and_what_is_supported():
    class OtherTower:
        model = torch.nn.Linear(2, 2)
        card = None

    with pytest.raises(MedrivalError, match="CoOp does not support the text tower of Linear"):
        token_embedding_layer(OtherTower())
