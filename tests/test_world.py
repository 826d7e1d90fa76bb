"""The synthetic demo world: determinism, learnable labels, balance, VQA and captions, corpora."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from medrival.core.errors import UnknownNameError
from medrival.data import world
from medrival.data.world.corpus import CORPORA, build_corpus

DIAGNOSTIC = world.DIAGNOSTIC_MODALITIES
ALL_MODALITIES = tuple(world.GENERATORS)


# ----------------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("modality", ALL_MODALITIES)
def test_same_seed_renders_byte_identical_images_and_attrs(modality):
    first = world.render(modality, "val", 12, seed=3, size=32)
    second = world.render(modality, "val", 12, seed=3, size=32)
    assert first.images.tobytes() == second.images.tobytes()
    assert first.attrs == second.attrs


@pytest.mark.parametrize("modality", ALL_MODALITIES)
def test_slice_with_start_equals_rows_of_full_render(modality):
    full = world.render(modality, "train", 15, seed=1, size=32)
    part = world.render(modality, "train", 6, seed=1, size=32, start=7)
    assert part.images.tobytes() == full.images[7:13].tobytes()
    assert part.attrs == full.attrs[7:13]


@pytest.mark.parametrize("modality", ALL_MODALITIES)
def test_different_seeds_and_splits_differ(modality):
    base = world.render(modality, "val", 8, seed=0, size=32)
    other_seed = world.render(modality, "val", 8, seed=1, size=32)
    other_split = world.render(modality, "test", 8, seed=0, size=32)
    assert not np.array_equal(base.images, other_seed.images)
    assert not np.array_equal(base.images, other_split.images)
    # Every image within a split is distinct too (per-sample seeding, not one image repeated).
    assert len({img.tobytes() for img in base.images}) == len(base.images)


# ----------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("modality", ALL_MODALITIES)
def test_images_are_uint8_n_s_s_3(modality, size):
    sample = world.render(modality, "val", 5, size=size)
    assert sample.images.dtype == np.uint8
    assert sample.images.shape == (5, size, size, 3)
    assert len(sample.attrs) == 5
    assert sample.labels.shape == (5,)
    # Not a blank image: real content spans a range of intensities.
    assert int(sample.images.max()) - int(sample.images.min()) > 40


def test_labels_property_matches_attrs():
    sample = world.render("fundus", "val", 10, size=32)
    assert sample.labels.dtype == np.int64
    assert sample.labels.tolist() == [a["label"] for a in sample.attrs]


# ----------------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("modality", DIAGNOSTIC)
def test_label_balance(modality):
    module = world.generator(modality)
    labels = world.render(modality, "train", 600, size=32).labels
    k = len(module.CLASS_NAMES)
    assert set(labels.tolist()) == set(range(k))
    shares = np.bincount(labels, minlength=k) / len(labels)
    low, high = (0.35, 0.65) if k == 2 else (0.20, 0.50)
    assert np.all((shares >= low) & (shares <= high)), shares


@pytest.mark.parametrize("modality", DIAGNOSTIC)
def test_attrs_describe_the_label(modality):
    module = world.generator(modality)
    for attrs in world.render(modality, "val", 40, size=32).attrs:
        assert 0 <= attrs["label"] < len(module.CLASS_NAMES)
        assert attrs["finding"] == module.CLASS_NAMES[attrs["label"]]


def _image_statistics(images: np.ndarray) -> np.ndarray:
    """Hand-made features: channel means/stds, dark/red/yellow pixel fractions and a coarse brightness layout."""
    x = images.astype(np.float32) / 255.0
    n, size = len(x), x.shape[1]
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    lum = x.mean(-1)
    cell = size // 4
    layout = lum.reshape(n, 4, cell, 4, cell).mean((2, 4)).reshape(n, 16)
    return np.concatenate([
        x.mean((1, 2)), x.std((1, 2)),
        (lum < 0.25).mean((1, 2))[:, None],
        ((r > g + 0.25) & (r > b + 0.25)).mean((1, 2))[:, None],
        ((r > 0.6) & (g > 0.6) & (b < 0.5)).mean((1, 2))[:, None],
        layout / (lum.mean((1, 2))[:, None] + 1e-3),  # relative brightness: robust to exposure changes
    ], axis=1)


@pytest.mark.parametrize("modality", DIAGNOSTIC)
def test_labels_are_decided_by_visible_features(modality):
    """A linear model on simple image statistics beats chance clearly on held-out images."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = world.render(modality, "train", 300, size=32)
    test = world.render(modality, "test", 300, size=32)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(_image_statistics(train.images), train.labels)
    score = balanced_accuracy_score(test.labels, classifier.predict(_image_statistics(test.images)))
    chance = 1.0 / len(world.generator(modality).CLASS_NAMES)
    # Observed: xray ~0.84, dermoscopy ~0.95, fundus ~0.95, pathology ~1.0.
    assert score >= max(0.7, chance + 0.25), score


def test_diagnostic_modalities_look_different():
    means = {m: world.render(m, "val", 40, size=32).images.reshape(-1, 3).mean(0) for m in DIAGNOSTIC}
    for a, b in itertools.combinations(DIAGNOSTIC, 2):
        assert np.linalg.norm(means[a] - means[b]) > 20.0, (a, b, means[a], means[b])
    # The x-ray is greyscale; the others are coloured.
    xray = world.render("xray", "val", 3, size=32).images
    assert np.array_equal(xray[..., 0], xray[..., 1]) and np.array_equal(xray[..., 1], xray[..., 2])
    for modality in ("dermoscopy", "fundus", "pathology"):
        spread = means[modality].max() - means[modality].min()
        assert spread > 20.0, (modality, means[modality])


# ----------------------------------------------------------------------------------------------- VQA
@pytest.mark.parametrize("modality", DIAGNOSTIC)
def test_every_image_has_closed_and_open_questions(modality):
    for attrs in world.render(modality, "val", 30, size=32).attrs:
        triples = world.questions(modality, attrs)
        kinds = [kind for _, _, kind in triples]
        assert set(kinds) <= {"closed", "open"}
        assert "closed" in kinds and "open" in kinds
        for question, answer, kind in triples:
            assert question.endswith("?") and answer
            if kind == "closed":
                assert answer in ("yes", "no"), (question, answer)
        questions = [q for q, _, _ in triples]
        assert len(questions) == len(set(questions)), "a question is asked twice about one image"


# question -> predicate on the sample's attributes that makes the answer "yes"
_CLOSED_RULES = {
    "xray": {"is there an opacity in the lungs?": lambda a: a["label"] == 1,
             "is this a normal chest x-ray?": lambda a: a["label"] == 0},
    # Border irregularity overlaps between classes: it follows the drawn border, not the diagnosis.
    "dermoscopy": {"is this lesion malignant?": lambda a: a["label"] == 1,
                   "is the lesion border irregular?": lambda a: a["irregular"]},
    "fundus": {"are there haemorrhages in the retina?": lambda a: a["label"] == 1,
               "is the optic cup enlarged?": lambda a: a["label"] == 2},
    "pathology": {"are the nuclei enlarged?": lambda a: a["label"] == 1,
                  "is there evidence of malignancy?": lambda a: a["label"] == 1},
}


@pytest.mark.parametrize("modality", DIAGNOSTIC)
def test_closed_answers_follow_labels(modality):
    sample = world.render(modality, "val", 60, size=32)
    module = world.generator(modality)
    for attrs in sample.attrs:
        answers = {q: a for q, a, _ in world.questions(modality, attrs)}
        for question, is_yes in _CLOSED_RULES[modality].items():
            assert answers[question] == ("yes" if is_yes(attrs) else "no"), (question, attrs)
        # The open diagnosis question names the class.
        open_answers = [a for q, a, kind in world.questions(modality, attrs) if kind == "open"]
        finding = module.CLASS_NAMES[attrs["label"]]
        assert finding in open_answers or (modality == "xray" and attrs["label"] == 0 and "normal" in open_answers)


def test_xray_side_questions_only_for_pneumonia():
    for attrs in world.render("xray", "val", 40, size=32).attrs:
        questions = [q for q, _, _ in world.questions("xray", attrs)]
        assert ("which lung is affected?" in questions) == (attrs["label"] == 1)
        if attrs["label"] == 1:
            answers = dict((q, a) for q, a, _ in world.questions("xray", attrs))
            assert answers["which lung is affected?"] == attrs["side"] in ("left", "right")


# ----------------------------------------------------------------------------------------------- captions
@pytest.mark.parametrize("modality", DIAGNOSTIC)
def test_generic_and_report_captions_differ(modality):
    sample = world.render(modality, "val", 20, size=32)
    rng = np.random.default_rng(0)
    for attrs in sample.attrs:
        generic = world.caption(modality, attrs, rng, "generic")
        report = world.caption(modality, attrs, rng, "report")
        assert generic and report and generic != report
        # With medical_rate 0 the lay caption never names the diagnosis; a report names every abnormal finding
        # (a normal chest film is reported as "clear lungs" and the like, without the word "normal").
        assert attrs["finding"] not in generic
        if attrs["label"] != 0:
            assert attrs["finding"] in report


def test_report_of_pneumonia_xray_mentions_pneumonia():
    attrs = next(a for a in world.render("xray", "val", 20, size=32).attrs if a["label"] == 1)
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert "pneumonia" in world.caption("xray", attrs, rng, "report").lower()
        assert "pneumonia" not in world.caption("xray", attrs, rng, "generic", medical_rate=0.0).lower()


def test_medical_rate_one_names_the_finding():
    attrs = next(a for a in world.render("pathology", "val", 20, size=32).attrs if a["label"] == 1)
    rng = np.random.default_rng(0)
    assert "tumor" in world.caption("pathology", attrs, rng, "generic", medical_rate=1.0)


def test_caption_is_deterministic_given_rng_seed():
    attrs = world.render("dermoscopy", "val", 1, size=32).attrs[0]
    a = world.caption("dermoscopy", attrs, np.random.default_rng(5), "generic", 0.5)
    b = world.caption("dermoscopy", attrs, np.random.default_rng(5), "generic", 0.5)
    assert a == b


def test_unknown_caption_style_is_rejected():
    attrs = world.render("xray", "val", 1, size=32).attrs[0]
    with pytest.raises(ValueError, match="style"):
        world.caption("xray", attrs, np.random.default_rng(0), "poem")


# ----------------------------------------------------------------------------------------------- errors
def test_unknown_modality_suggests_close_match():
    with pytest.raises(UnknownNameError) as caught:
        world.render("xary", "val", 2)
    assert "'xray'" in str(caught.value) and "Did you mean" in str(caught.value)
    with pytest.raises(UnknownNameError, match="pathology"):
        world.generator("patholgy")


def test_unknown_split_suggests_close_match():
    with pytest.raises(UnknownNameError) as caught:
        world.render("xray", "tset", 2)
    message = str(caught.value)
    assert "'tset'" in message and "'test'" in message and "Did you mean" in message
    assert "train" in message  # lists what exists


# ----------------------------------------------------------------------------------------------- corpus
def test_corpus_holds_the_configured_modalities():
    corpus = build_corpus("specialist", per_modality=4, seed=0, size=32)
    assert corpus.images.shape == (8, 32, 32, 3) and corpus.images.dtype == np.uint8
    assert corpus.modalities == ["xray"] * 4 + ["pathology"] * 4
    assert corpus.style == "report"
    generalist = build_corpus("generalist", per_modality=2, seed=0, size=32)
    assert sorted(set(generalist.modalities)) == sorted(CORPORA["generalist"]["modalities"])
    # The corpus draws from the "pretrain" split, never from the evaluation splits.
    for split in ("train", "val", "test"):
        assert not np.array_equal(corpus.images[:4], world.render("xray", split, 4, size=32).images)
    assert np.array_equal(corpus.images[:4], world.render("xray", "pretrain", 4, size=32).images)


@pytest.mark.parametrize("kind", sorted(CORPORA))
def test_corpus_captions_deterministic_per_epoch_and_redrawn_across_epochs(kind):
    corpus = build_corpus(kind, per_modality=6, seed=0, size=32)
    again = build_corpus(kind, per_modality=6, seed=0, size=32)
    assert np.array_equal(corpus.images, again.images)
    epoch0 = corpus.captions(epoch=0, seed=0)
    assert len(epoch0) == len(corpus.images)
    assert epoch0 == corpus.captions(epoch=0, seed=0) == again.captions(epoch=0, seed=0)
    assert epoch0 != corpus.captions(epoch=1, seed=0)
    assert epoch0 != corpus.captions(epoch=0, seed=1)


def test_specialist_corpus_uses_report_sentences():
    corpus = build_corpus("specialist", per_modality=5, seed=0, size=32)
    captions = corpus.captions(0, 0)
    assert any(attrs["label"] == 1 for attrs in corpus.attrs)
    for text, attrs in zip(captions, corpus.attrs):
        if attrs["label"] == 1:
            assert attrs["finding"] in text  # "pneumonia" / "tumor"
