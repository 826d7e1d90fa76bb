"""Issue 14, finding 4: LoRA adapts the same logical modules in every serving library, each update scaled alpha/r once.

What must hold: splitting packed attention (open_clip's nn.MultiheadAttention, timm's qkv Linear) changes no output
(1e-6); after injection no peft layer wraps an nn.MultiheadAttention and open_clip's out_proj update is alpha/r·B·A
applied exactly once (peft 0.21 applies it twice on packed attention); the default targets are the six projections
of every block (q, k, v, out, MLP in, MLP out) in each layout, BERT's two ``output.dense`` told apart; and the count
the method records equals ``lora_budget``'s.
"""
from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from medrival.core.errors import ConfigError  # noqa: E402
from medrival.methods.lora import LoraConfig, inject_lora, lora_budget, lora_parameters  # noqa: E402
from medrival.methods.training import working_copy  # noqa: E402
from medrival.models.factory import create_model  # noqa: E402
from medrival.models.lora_targets import LAYOUTS, ROLES, resolve_targets  # noqa: E402
from medrival.models.split_attention import (SplitMultiheadAttention, SplitQKV, packed_attention,  # noqa: E402
                                             split_packed_attention)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def generalist():
    return create_model("demo-generalist-clip")


# ----------------------------------------------------------------------------------------------- the split
MHA_CASES = {  # name: (constructor options, call options)
    "open_clip_causal_float_mask": ({"batch_first": True}, {"need_weights": False, "mask": "causal_float"}),
    "no_mask": ({"batch_first": True}, {"need_weights": False}),
    "sequence_first_bool_masks": ({"batch_first": False}, {"need_weights": False, "mask": "causal_bool",
                                                           "pad": "bool"}),
    "padding_and_3d_mask_with_weights": ({"batch_first": True}, {"need_weights": True, "mask": "3d", "pad": "float"}),
    "per_head_weights_no_bias": ({"batch_first": True, "bias": False}, {"need_weights": True, "average": False}),
    "cross_attention_kdim_vdim": ({"batch_first": True, "kdim": 6, "vdim": 10}, {"need_weights": True}),
    "unbatched": ({"batch_first": True}, {"need_weights": False, "unbatched": True}),
}


def _masks(call: dict, batch: int, heads: int, length: int):
    causal = torch.ones(length, length, dtype=torch.bool).triu(1)
    mask = {None: None, "causal_bool": causal,
            "causal_float": torch.zeros(length, length).masked_fill(causal, float("-inf")),
            "3d": 0.5 * torch.randn(batch * heads, length, length)}[call.get("mask")]
    if not call.get("pad"):
        return mask, None
    pad = torch.zeros(batch, length, dtype=torch.bool)
    pad[0, -2:] = True  # the first sequence's last two keys are padding
    return mask, pad if call["pad"] == "bool" else torch.zeros(batch, length).masked_fill(pad, float("-inf"))


@pytest.mark.parametrize("case", sorted(MHA_CASES))
@pytest.mark.parametrize("grad", [False, True], ids=["inference", "training"])
def test_finding4_split_multihead_attention_gives_the_packed_outputs(case, grad):
    build, call = MHA_CASES[case]
    torch.manual_seed(0)
    packed = torch.nn.MultiheadAttention(16, 4, **build).eval()
    split = SplitMultiheadAttention(copy.deepcopy(packed)).eval()
    batch, length = 3, 7
    mask, pad = _masks(call, batch, 4, length)
    query = torch.randn(batch, length, 16)
    key = torch.randn(batch, length, build.get("kdim", 16))
    value = torch.randn(batch, length, build.get("vdim", 16))
    if not build["batch_first"]:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    if call.get("unbatched"):
        query, key, value = query[0], key[0], value[0]
    options = dict(need_weights=call["need_weights"], attn_mask=mask, key_padding_mask=pad,
                   average_attn_weights=call.get("average", True))
    with torch.set_grad_enabled(grad):  # inference may take torch's fused fast path; training the general one
        expected, expected_weights = packed(query, key, value, **options)
        got, weights = split(query, key, value, **options)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    if call["need_weights"]:
        torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=0)
    else:
        assert weights is None and expected_weights is None


def test_finding4_split_qkv_gives_timm_attentions_outputs():
    from timm.layers import Attention

    torch.manual_seed(0)
    attention = Attention(16, num_heads=4, qkv_bias=True).eval()
    x = torch.randn(2, 9, 16)
    expected = attention(x)
    assert split_packed_attention(attention) == 1 and isinstance(attention.qkv, SplitQKV)
    torch.testing.assert_close(attention(x), expected, atol=1e-6, rtol=0)
    assert [n for n, _ in attention.qkv.named_children()] == ["q_proj", "k_proj", "v_proj"]


def test_finding4_split_open_clip_towers_give_the_same_features(generalist):
    import numpy as np

    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    texts = ["a chest x-ray", "pink tissue with purple dots"]
    before = generalist.encode_images(images), generalist.encode_texts(texts)
    copy_ = working_copy(generalist)
    assert split_packed_attention(copy_.model) == 6  # 3 image + 3 text blocks
    assert not packed_attention(copy_.model)
    after = copy_.encode_images(images), copy_.encode_texts(texts)
    for a, b in zip(after, before):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_finding4_packed_attention_is_refused_not_adapted(generalist):
    model = generalist.model
    with pytest.raises(ConfigError, match="packed attention.*split_packed_attention"):
        resolve_targets(model, {"vision": model.visual})
    copy_ = working_copy(generalist)
    split_packed_attention(copy_.model)
    with pytest.raises(ConfigError, match=r"\['attn'\] match no adaptable module.*split into q_proj"):
        resolve_targets(copy_.model, {"vision": copy_.model.visual}, ["attn"])


# ----------------------------------------------------------------------------------------------- the scale
def _set_known(network) -> None:
    """Every LoRA A and B matrix set to fixed, distinct values (B is zero after initialisation)."""
    with torch.no_grad():
        for index, (name, parameter) in enumerate(sorted(
                (n, p) for n, p in network.named_parameters() if ".lora_" in n)):
            values = torch.linspace(-1, 1, parameter.numel()).reshape(parameter.shape)
            parameter.copy_(0.05 * torch.roll(values, index))


def test_finding4_open_clip_out_proj_update_is_applied_once_at_alpha_over_r(generalist):
    from peft.tuners.lora.layer import MultiheadAttention as PeftMultiheadAttention

    rank, alpha = 4, 12.0
    original = copy.deepcopy(generalist.model.visual.transformer.resblocks[0].attn)
    adapter = working_copy(generalist)
    inject_lora(adapter, LoraConfig(rank=rank, alpha=alpha, dropout=0.0))
    assert not any(isinstance(m, PeftMultiheadAttention) for m in adapter.model.modules())
    _set_known(adapter.model)
    attention = adapter.model.visual.transformer.resblocks[0].attn
    scale = alpha / rank

    def delta(layer):  # alpha/r · B · A from the raw matrices, not from peft's helpers
        return scale * layer.lora_B["default"].weight @ layer.lora_A["default"].weight

    assert attention.out_proj.scaling["default"] == scale
    reference = copy.deepcopy(original)
    twice = copy.deepcopy(original)
    with torch.no_grad():
        packed_delta = torch.cat([delta(attention.q_proj), delta(attention.k_proj), delta(attention.v_proj)])
        for target, factor in ((reference, 1), (twice, 2)):
            target.in_proj_weight += packed_delta
            target.out_proj.weight += factor * delta(attention.out_proj)
    x = torch.randn(2, 5, original.embed_dim)
    with torch.no_grad():
        got = attention(x, x, x, need_weights=False)[0]
        torch.testing.assert_close(got, reference(x, x, x, need_weights=False)[0], atol=1e-6, rtol=0)
        # peft 0.21 on the packed module gave W + 2·dW: the test tells the two apart.
        assert (got - twice(x, x, x, need_weights=False)[0]).abs().max() > 1e-3
        out_input = torch.randn(3, original.embed_dim)
        base = attention.out_proj.get_base_layer()
        torch.testing.assert_close(attention.out_proj(out_input) - base(out_input),
                                   out_input @ delta(attention.out_proj).T, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------------------- the targets
def test_finding4_every_layout_declares_the_same_six_roles():
    assert ROLES == ("q", "k", "v", "out", "mlp_in", "mlp_out")
    for layout in LAYOUTS:
        assert tuple(layout.roles) == ROLES, layout.name


def test_finding4_open_clip_defaults_are_the_six_projections_of_each_block(generalist):
    adapter = working_copy(generalist)
    names = inject_lora(adapter, LoraConfig())
    assert names == [f"visual.transformer.resblocks.{i}.{m}" for i in range(3)
                     for m in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "mlp.c_fc", "mlp.c_proj")]
    text = working_copy(generalist)
    assert inject_lora(text, LoraConfig(tower="text")) == [n.replace("visual.", "") for n in names]


def test_finding4_bert_output_dense_and_attention_output_dense_are_told_apart(tmp_path):
    import tiny_checkpoints as tiny
    from open_clip.model import CustomTextCLIP

    bert = tiny.save_tiny_bert(tmp_path / "bert")
    _, build = tiny.biomedclip_style_cfgs("bert", bert, 16)
    model = CustomTextCLIP(**build)
    split_packed_attention(model)
    names = resolve_targets(model, {"vision": model.visual, "text": model.text})
    layer = "text.transformer.encoder.layer.0."
    assert [n for n in names if n.startswith("text.")] == [layer + m for m in (
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
        "intermediate.dense", "output.dense")]
    block = "visual.trunk.blocks.0."
    assert [n for n in names if n.startswith("visual.")] == [block + m for m in (
        "attn.qkv.q_proj", "attn.qkv.k_proj", "attn.qkv.v_proj", "attn.proj", "mlp.fc1", "mlp.fc2")]
    bert_layout = next(layout for layout in LAYOUTS if "BERT" in layout.name)
    roles = [role for name in names for role in ROLES if bert_layout.pattern([role]).search(name)]
    assert roles == list(ROLES)  # each name plays exactly one role


@pytest.mark.parametrize("model_class", ["CLIPModel", "SiglipModel"])
def test_finding4_transformers_defaults_skip_the_siglip_pooling_head(model_class, tmp_path):
    import tiny_checkpoints as tiny

    if model_class == "SiglipModel":
        pytest.importorskip("sentencepiece")
    model, _, _ = tiny.save_tiny_transformers(tmp_path, model_class, 32, 8, 16)
    split = split_packed_attention(model)
    assert split == (1 if model_class == "SiglipModel" else 0)  # SigLIP's attention-pool head is an nn.MHA
    names = resolve_targets(model, {"vision": model.vision_model, "text": model.text_model})
    for tower in ("vision_model", "text_model"):
        assert sorted(n for n in names if n.startswith(tower)) == sorted(f"{tower}.encoder.layers.0.{m}" for m in (
            "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2"))


# ----------------------------------------------------------------------------------------------- the record
def test_finding4_the_method_records_the_budget_lora_budget_predicts(generalist):
    from medrival.data.catalog import load_dataset
    from medrival.methods import METHODS
    from medrival.methods.features import FeatureCache

    data = {split: load_dataset("demo-pathology", split, n=24) for split in ("train", "val", "test")}
    spec = METHODS.get("lora")
    method = spec.build(spec.make_config({"epochs": 1, "rank": 4, "tower": "both"}))
    method.fit(generalist, data["train"], data["val"], FeatureCache(None), seed=0)
    output = method.predict(data["test"])
    expected = lora_budget(generalist, rank=4, tower="both")
    assert (output.extras["lora_parameters"], output.extras["adapted_modules"]) == tuple(expected)
    assert expected.parameters == sum(p.numel() for p in lora_parameters(method.network.backbone))
    assert output.trainable_parameters == expected.parameters  # text tower trains: the head is recomputed
    assert lora_budget(generalist.model, rank=4, tower="both") == expected  # a bare model works too
    with pytest.raises(ConfigError, match="tower must be one of"):
        lora_budget(generalist, tower="image")
