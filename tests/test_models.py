"""The open_clip adapter, the compact demo-weight format and the model factory, on a tiny random-init model.

Nothing here needs the shipped demo weights: a tiny ``open_clip.CLIP`` with the demo architecture is built,
saved as a ``local-dir`` folder (and in the compact format) under a temporary directory, and served from there.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from medrival.core.cards import ModelCard  # noqa: E402
from medrival.core.errors import DataError, MedrivalError  # noqa: E402
from medrival.models import demo_weights  # noqa: E402
from medrival.models.demo_weights import (  # noqa: E402
    COMPACT_FILE, EMBEDDING_KEY, TINY_MODEL_CFG, TINY_PREPROCESS_CFG, load_full_state_dict, materialize,
    save_compact)
from medrival.models.factory import create_model  # noqa: E402
from medrival.models.openclip_adapter import OpenClipModel, preprocess_images  # noqa: E402

SENTENCES = ["a chest x-ray showing pneumonia.", "normal lungs", "a dermoscopy image of melanoma.",
             "pink pattern with small purple dots"]
EMBED_DIM = TINY_MODEL_CFG["embed_dim"]


def _card(kind: str, name: str, model_id: str = "tiny-test-clip") -> ModelCard:
    return ModelCard(id=model_id, family="contrastive", role="generalist", source={"kind": kind, "name": name},
                     pretraining_modalities=["xray"], licence="test", synthetic=True)


@pytest.fixture(scope="module")
def compact_state(tmp_path_factory):
    """A tiny random CLIP whose unused token rows are zero, saved compactly: (state dict, compact path)."""
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_MODEL_CFG)
    tokens = open_clip.get_tokenizer("ViT-B-32", context_length=TINY_MODEL_CFG["text_cfg"]["context_length"])(
        SENTENCES)
    keep = torch.zeros(model.token_embedding.weight.shape[0], dtype=torch.bool)
    keep[torch.unique(tokens)] = True
    keep[0] = False  # padding
    with torch.no_grad():
        model.token_embedding.weight[~keep] = 0.0
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    path = save_compact(state, tmp_path_factory.mktemp("compact") / "tiny")
    return state, path, int(keep.sum())


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory, compact_state):
    """A full open_clip ``local-dir`` folder: open_clip_config.json + open_clip_model.safetensors."""
    from safetensors.torch import save_file

    _, path, _ = compact_state
    folder = tmp_path_factory.mktemp("local-dir") / "tiny-clip"
    folder.mkdir()
    config = {"model_cfg": TINY_MODEL_CFG, "preprocess_cfg": TINY_PREPROCESS_CFG}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    save_file(load_full_state_dict(path), str(folder / "open_clip_model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def model(local_dir) -> OpenClipModel:
    return create_model(_card("local-dir", str(local_dir)))


@pytest.fixture(scope="module")
def images():
    from medrival.data import world

    return world.render("dermoscopy", "val", 7, size=64).images


# ----------------------------------------------------------------------------------------------- compact weights
def test_compact_round_trip_is_exact(compact_state):
    state, path, used_rows = compact_state
    assert path.name == COMPACT_FILE and path.is_file()
    loaded = load_full_state_dict(path)
    assert set(loaded) == set(state)
    for key, tensor in state.items():
        assert loaded[key].dtype == tensor.dtype, key
        assert torch.equal(loaded[key], tensor), key


def test_compact_file_stores_only_used_rows(compact_state):
    from safetensors import safe_open

    state, path, used_rows = compact_state
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        rows = handle.get_tensor("token_embedding.rows")
        assert int(handle.metadata()["vocab_size"]) == state[EMBEDDING_KEY].shape[0]
    assert EMBEDDING_KEY not in keys
    assert 0 < len(rows) == used_rows < 200
    # The compact file is far smaller than the 49408 x 64 float embedding alone (12.6 MB).
    assert path.stat().st_size < state[EMBEDDING_KEY].numel() * 4 / 2


# ----------------------------------------------------------------------------------------------- the adapter
def test_create_model_from_local_dir_card(model, local_dir):
    assert isinstance(model, OpenClipModel)
    assert model.family == "contrastive"
    assert model.embed_dim == EMBED_DIM
    assert model.num_parameters() > 0
    assert model.logit_scale > 0
    assert model.image_tower is model.model.visual
    assert model.text_tower is not None
    assert not model.model.training
    # open_clip reports the folder's preprocessing config (size as an (h, w) pair).
    assert tuple(np.atleast_1d(model.preprocess_cfg["size"])) in ((64,), (64, 64))
    for key in ("mean", "std"):
        assert list(model.preprocess_cfg[key]) == TINY_PREPROCESS_CFG[key]
    assert model.preprocess_cfg["interpolation"] == "bicubic"
    assert model.preprocess_cfg["resize_mode"] == "shortest"
    # The weights in the folder are the ones served.
    from safetensors.torch import load_file

    saved = load_file(str(local_dir / "open_clip_model.safetensors"))
    served = model.model.state_dict()
    for key in ("visual.conv1.weight", EMBEDDING_KEY, "text_projection"):
        assert torch.equal(served[key], saved[key]), key


def _assert_unit_rows(features, n):
    assert features.shape == (n, EMBED_DIM)
    assert features.dtype == torch.float32
    assert torch.isfinite(features).all()
    assert torch.allclose(features.norm(dim=1), torch.ones(n), atol=1e-5)


def test_encode_images_unit_norm_and_batch_invariant(model, images):
    big = model.encode_images(images, batch_size=256)
    small = model.encode_images(images, batch_size=3)
    _assert_unit_rows(big, len(images))
    assert torch.allclose(big, small, atol=1e-5)
    # Distinct images give distinct features.
    assert not torch.allclose(big[0], big[1])
    raw = model.encode_images(images[:2], normalize=False)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(2))


def test_encode_texts_unit_norm_and_batch_invariant(model):
    big = model.encode_texts(SENTENCES, batch_size=256)
    small = model.encode_texts(SENTENCES, batch_size=3)
    _assert_unit_rows(big, len(SENTENCES))
    assert torch.allclose(big, small, atol=1e-5)
    assert torch.allclose(model.encode_texts(tuple(SENTENCES)), big, atol=1e-6)


def test_empty_inputs_give_empty_features(model):
    assert model.encode_images(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, EMBED_DIM)
    assert model.encode_texts([]).shape == (0, EMBED_DIM)


def test_encoding_is_deterministic(model, images):
    assert torch.equal(model.encode_images(images[:3]), model.encode_images(images[:3]))


# ----------------------------------------------------------------------------------------------- preprocessing
def _reference(images: np.ndarray, cfg: dict):
    from PIL import Image

    transform = open_clip.image_transform(
        cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"], resize_mode=cfg["resize_mode"],
        interpolation=cfg["interpolation"], fill_color=cfg["fill_color"])
    return torch.stack([transform(Image.fromarray(image)) for image in images])


def _smooth_images(h: int, w: int, n: int = 2) -> np.ndarray:
    from medrival.data import world

    return np.ascontiguousarray(world.render("fundus", "val", n, size=max(h, w)).images[:, :h, :w])


@pytest.mark.parametrize("resize_mode", ["shortest", "squash", "longest"])
@pytest.mark.parametrize("shape", [(80, 100), (100, 67), (33, 50), (67, 64), (48, 48), (64, 64)])
def test_preprocessing_matches_open_clip_pil_transform(model, shape, resize_mode):
    """Batched tensor preprocessing equals open_clip's PIL transform up to interpolation-kernel differences.

    Observed: mean |diff| <= 0.005 and max <= 0.047 after normalisation (std 0.25, so one uint8 step is 0.016):
    PIL resizes uint8 pixels and rounds, torch resizes floats. Output sizes and crop offsets match exactly (an
    off-by-one crop or resize gives mean differences of 0.03-0.11 on these shapes).
    """
    cfg = {**model.preprocess_cfg, "resize_mode": resize_mode}
    batch = _smooth_images(*shape)
    ours = preprocess_images(batch, cfg)
    reference = _reference(batch, cfg)
    assert ours.shape == reference.shape == (len(batch), 3, 64, 64)
    difference = (ours - reference).abs()
    assert difference.mean() < 0.01, float(difference.mean())
    assert difference.max() < 0.1, float(difference.max())


def test_preprocessing_at_target_size_is_only_normalisation(model):
    batch = _smooth_images(64, 64)
    out = model.preprocess(batch)
    expected = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    assert torch.allclose(out, expected, atol=1e-6)


def test_non_square_images_encode(model):
    features = model.encode_images(_smooth_images(80, 100, n=3), batch_size=2)
    _assert_unit_rows(features, 3)


# ----------------------------------------------------------------------------------------------- fingerprint
def test_fingerprint_tracks_weights_and_preprocessing(model):
    same = OpenClipModel(model.card, model.model, model.tokenizer, model.preprocess_cfg, model._weights_id)
    other_weights = OpenClipModel(model.card, model.model, model.tokenizer, model.preprocess_cfg, "local-dir:/x")
    other_prep = OpenClipModel(model.card, model.model, model.tokenizer,
                               {**model.preprocess_cfg, "interpolation": "bilinear"}, model._weights_id)
    other_size = OpenClipModel(model.card, model.model, model.tokenizer,
                               {**model.preprocess_cfg, "size": 32}, model._weights_id)
    assert same.fingerprint == model.fingerprint
    assert len({model.fingerprint, other_weights.fingerprint, other_prep.fingerprint, other_size.fingerprint}) == 4
    assert isinstance(model.fingerprint, str) and len(model.fingerprint) == 16


def test_fingerprint_differs_between_folders(tmp_path, local_dir, model):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(local_dir, copy)
    assert create_model(_card("local-dir", str(copy))).fingerprint != model.fingerprint


# ----------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("bad", [
    np.zeros((2, 64, 64, 3), np.float32),  # float images
    np.zeros((2, 64, 64), np.uint8),  # no channel axis
    np.zeros((2, 64, 64, 4), np.uint8),  # RGBA
    np.zeros((64, 64, 3), np.uint8),  # a single image, not a batch
    [np.zeros((64, 64, 3), np.uint8)],  # a list, not an array
])
def test_bad_images_raise_data_error(model, bad):
    with pytest.raises(DataError):
        model.encode_images(bad)


@pytest.mark.parametrize("bad", ["a single string", ["ok", 3], None, 42])
def test_bad_texts_raise_data_error(model, bad):
    with pytest.raises(DataError, match="list of strings"):
        model.encode_texts(bad)


def test_missing_folder_is_a_medrival_error(tmp_path):
    with pytest.raises(MedrivalError, match="tiny-test-clip"):
        create_model(_card("local-dir", str(tmp_path / "does-not-exist")))


def test_folder_without_weights_is_a_medrival_error(tmp_path, local_dir):
    """A config without weights must not silently serve a randomly initialised model."""
    folder = tmp_path / "config-only"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text((local_dir / "open_clip_config.json").read_text())
    with pytest.raises(MedrivalError):
        create_model(_card("local-dir", str(folder)))


# ----------------------------------------------------------------------------------------------- demo weights
def test_materialize_unknown_id_names_available_ids():
    with pytest.raises(MedrivalError) as caught:
        materialize("no-such-demo-model")
    message = str(caught.value)
    assert "no-such-demo-model" in message and "Available" in message
    for shipped in demo_weights.shipped_ids():
        assert shipped in message


def test_materialize_builds_a_loadable_folder_once(monkeypatch, tmp_path, compact_state):
    """With a stand-in weights folder: materialize writes the full folder once; a demo card then loads from it."""
    import shutil

    _, path, _ = compact_state
    weights_dir = tmp_path / "weights"
    (weights_dir / "fake-demo").mkdir(parents=True)
    shutil.copy(path, weights_dir / "fake-demo" / COMPACT_FILE)
    monkeypatch.setattr(demo_weights, "WEIGHTS_DIR", weights_dir)
    monkeypatch.setenv("MEDRIVAL_CACHE_DIR", str(tmp_path / "cache"))
    assert demo_weights.shipped_ids() == ["fake-demo"]

    folder = materialize("fake-demo")
    assert folder.parent == tmp_path / "cache" / "demo_models"
    assert (folder / "open_clip_model.safetensors").is_file()
    config = json.loads((folder / "open_clip_config.json").read_text())
    assert config["model_cfg"] == TINY_MODEL_CFG and config["preprocess_cfg"] == TINY_PREPROCESS_CFG
    stamp = (folder / "open_clip_model.safetensors").stat().st_mtime_ns
    assert materialize("fake-demo") == folder  # reused, not rewritten
    assert (folder / "open_clip_model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folders left behind

    with pytest.raises(MedrivalError, match="fake-demo"):
        materialize("other-demo")
    demo_model = create_model(_card("demo", "fake-demo"))
    assert demo_model.fingerprint == create_model(_card("demo", "fake-demo")).fingerprint  # stable across loads
    _assert_unit_rows(demo_model.encode_texts(SENTENCES[:2]), 2)


def test_local_dir_fingerprint_changes_when_weights_are_rewritten(tmp_path):
    """Retrained weights in the same folder must not reuse features cached for the old ones."""
    import os

    from medrival.models.factory import _folder_version

    weights = tmp_path / "open_clip_model.safetensors"
    weights.write_bytes(b"a" * 10)
    before = _folder_version(str(tmp_path))
    weights.write_bytes(b"b" * 11)
    os.utime(weights, ns=(1, 1))
    assert _folder_version(str(tmp_path)) != before


def test_images_already_at_model_size_take_the_fused_path_with_identical_pixels():
    """The fused uint8 -> normalised shortcut must equal the general path (resize to the same size is identity)."""
    import numpy as np

    from medrival.models.preprocessing import preprocess_images

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    cfg = {"size": 32, "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.25], "resize_mode": "shortest"}
    fused = preprocess_images(images, cfg)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))  # 34 px: the general path resizes...
    general = preprocess_images(padded, {**cfg, "size": 32, "resize_size": 34})  # ...to 34 and crops 32
    assert fused.shape == general.shape == (5, 3, 32, 32)
    assert float((fused - general).abs().max()) < 1e-5
    resized = preprocess_images(images, {**cfg, "resize_size": 40})  # a resize step that is not the identity
    assert float((resized - fused).abs().max()) > 0.1
