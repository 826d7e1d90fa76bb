"""Finding 10 (metrics): one metric registry (``medrival.metrics.registry``) holds every metric a study can
produce, with its tasks, population, orientation and the exact function computing it; the old name lists are
computed from it; unknown names fail with a did-you-mean."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from medrival.core.errors import UnknownNameError
from medrival.metrics import compute_classification_metrics
from medrival.metrics.registry import (
    METRIC_REGISTRY,
    higher_is_better,
    lower_is_better_names,
    metric_names,
    metric_spec,
    metric_specs,
)

SKLEARN_TOL = 1e-12


def classification_example(task: str, seed: int = 0, n: int = 60, k: int = 4):
    """Labels and probabilities for ``task`` (binary K=2, multiclass K, multilabel L=K)."""
    rng = np.random.default_rng(seed)
    if task == "multilabel":
        y = rng.integers(0, 2, size=(n, k))
        y[0], y[1] = 1, 0  # every label has both values
        return y, rng.uniform(size=(n, k))
    classes = 2 if task == "binary" else k
    y = np.resize(np.arange(classes), n)
    rng.shuffle(y)
    logits = rng.normal(size=(n, classes)) + np.eye(classes)[y]
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, prob


def vqa_example() -> pd.DataFrame:
    """score_answers on items of every form, closed ones scored as open included."""
    from medrival.metrics.vqa import score_answers

    predictions = ["yes", "No.", "the left one", "B", "maybe", "a round nodule", "fracture", "left", "C"]
    references = ["yes", "yes", "left", "B", "no", "nodule", "fracture of rib", "right kidney", "A"]
    forms = ["yes_no", "yes_no", "choice", "multiple_choice", "yes_no", "open", "open", "choice", "multiple_choice"]
    options = [None, None, ("left", "right"), ("cat", "dog", "cow"), None, None, None, ("liver", "spleen"),
               ("x", "y", "z")]
    return score_answers(predictions, references, forms, options)


# --------------------------------------------------------------------------- every produced metric is registered


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_finding10_every_classification_metric_a_study_produces_is_registered(task):
    y, prob = classification_example(task)
    produced = compute_classification_metrics(task, y, prob)
    assert tuple(produced) == metric_names(task=task, source="classification")
    for name, value in produced.items():
        assert value == metric_spec(name).aggregate(y, prob, task=task)  # the very function, not a copy
    # The research questions' arm summaries add the calibration metrics (medrival.stats.questions).
    assert set(metric_names(source="calibration")) == {"brier", "ece"}


def test_finding10_every_vqa_metric_is_registered_with_its_population():
    from medrival.metrics.vqa import OPEN_METRICS, VQA_METRICS, summarise

    scores = vqa_example()
    metric_columns = [c for c in scores.columns if c not in ("form", "scored_as", "score_note", "extracted",
                                                             "decided_by")]
    assert metric_columns == list(metric_names(source="score_answers")) == list(VQA_METRICS)
    assert set(OPEN_METRICS) <= set(VQA_METRICS)
    summary = summarise(scores)
    for name in metric_columns:
        spec = metric_spec(name)
        assert spec.tasks == ("vqa",) and spec.column == name and spec.bootstrap == "item_mean"
        # the population is exactly the items where the per-item column is scored
        scored = set(scores.loc[scores[name].notna(), "scored_as"])
        assert scored <= set(spec.population) and scored, name
        assert set(scores.loc[scores["scored_as"].isin(spec.population), name].isna()) == {False}
        assert summary[name] == pytest.approx(np.nanmean(scores[name].to_numpy(dtype=float)), abs=1e-15)
    for name, function in OPEN_METRICS.items():  # the registered per-item function gives the stored column
        open_rows = scores["scored_as"] == "open"
        assert metric_spec(name).per_item is function
        assert metric_spec(name).population == ("open",)
        np.testing.assert_array_equal(scores.loc[open_rows, name].to_numpy(), function(
            ["a round nodule", "fracture", "left"], ["nodule", "fracture of rib", "right kidney"]))


def test_finding10_the_vqa_cell_and_judge_metrics_are_registered(monkeypatch):
    from medrival.metrics import llm_judge
    from medrival.study import vqa_cell

    scores = vqa_example()
    frame = scores.assign(prob_yes=np.where(scores["scored_as"] == "yes_no", [0.9, 0.2, 0, 0, 0.6, 0, 0, 0, 0],
                                            np.nan),
                          label_yes=np.where(scores["scored_as"] == "yes_no", [1.0, 1.0, 0, 0, 0.0, 0, 0, 0, 0],
                                             np.nan),
                          question="q", answer="a", response="r")
    metrics = vqa_cell.vqa_metrics(frame)
    produced = {name for name in metrics if not name.startswith("n_")}  # n_* are item counts, not metrics
    assert produced == set(metric_names(source=("score_answers", "vqa_cell")))
    spec = metric_spec("yes_no_auroc")
    yes_no = frame["scored_as"] == "yes_no"
    assert spec.population == ("yes_no",)
    assert metrics["yes_no_auroc"] == spec.aggregate(frame.loc[yes_no, "label_yes"], frame.loc[yes_no, "prob_yes"])

    def judged(questions, references, responses, **_):
        n = len(questions)
        return pd.DataFrame({"judge_mean": np.linspace(2, 4, n), "judge_sd": np.full(n, 0.5),
                             "judge_scores": [[1.0]] * n, "judge_failures": np.zeros(n, dtype=int)})

    monkeypatch.setattr(llm_judge, "judge_open_answers", judged)
    judged_frame, judge_metrics, _ = vqa_cell.judge_open_answers(frame, {})
    for name in ("llm_judge", "llm_judge_sd_mean"):
        spec = metric_spec(name)
        assert spec.population == ("open",)
        assert judge_metrics[name] == pytest.approx(spec.aggregate(judged_frame[spec.column]), abs=1e-15)
    # the rest is bookkeeping the report already treats as such
    from medrival.report.tables import NON_METRIC_COLUMNS

    assert set(judge_metrics) - set(METRIC_REGISTRY.names()) <= NON_METRIC_COLUMNS


# --------------------------------------------------------------------------------------------- orientation


def test_finding10_orientation_of_brier_ece_and_undecided_rate():
    from medrival.stats.verdicts import higher_is_better as verdict_orientation

    lower = {"brier", "ece", "undecided_rate", "llm_judge_sd_mean"}
    assert {spec.name for spec in metric_specs() if not spec.higher_is_better} == lower
    for name in METRIC_REGISTRY.names():
        assert verdict_orientation(name) == higher_is_better(name) == (name not in lower), name
    assert not higher_is_better("brier_score") and not higher_is_better("expected_calibration_error")  # aliases
    assert lower_is_better_names() == lower | {"brier_score", "expected_calibration_error"}


def test_finding10_unknown_metric_names_raise_with_did_you_mean():
    from medrival.stats.verdicts import higher_is_better as verdict_orientation
    from medrival.stats.weighted import UnknownMetricError, check_metric_name

    with pytest.raises(UnknownNameError, match="Did you mean 'auroc'"):
        metric_spec("aurco")
    with pytest.raises(UnknownNameError, match="Did you mean 'undecided_rate'.*Available metrics: .*closed_accuracy"):
        verdict_orientation("undecided_rat")
    with pytest.raises(UnknownMetricError, match="'ece' has no bootstrap by name.*auroc, accuracy"):
        check_metric_name("ece")
    with pytest.raises(UnknownMetricError, match="Did you mean 'macro_f1'"):
        check_metric_name("macro_f")


# -------------------------------------------------------------------------------- aggregates against sklearn


@pytest.mark.parametrize("seed", range(4))
def test_finding10_registered_aggregates_equal_sklearn(seed):
    def aggregate(name, task, y, prob):
        return metric_spec(name).aggregate(y, prob, task=task)

    y, prob = classification_example("binary", seed)
    pred = prob.argmax(axis=1)
    assert aggregate("auroc", "binary", y, prob) == pytest.approx(skm.roc_auc_score(y, prob[:, 1]), abs=SKLEARN_TOL)
    assert aggregate("auroc", "binary", y, prob[:, 1]) == aggregate("auroc", "binary", y, prob)  # 1-D p
    assert aggregate("brier", "binary", y, prob) == pytest.approx(skm.brier_score_loss(y, prob[:, 1]),
                                                                  abs=SKLEARN_TOL)
    assert metric_spec("yes_no_auroc").aggregate(y, prob[:, 1]) == pytest.approx(
        skm.roc_auc_score(y, prob[:, 1]), abs=SKLEARN_TOL)
    for task, (y, prob) in (("binary", (y, prob)), ("multiclass", classification_example("multiclass", seed))):
        pred = prob.argmax(axis=1)
        labels = list(range(prob.shape[1]))
        expected = {
            "accuracy": skm.accuracy_score(y, pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
            "macro_f1": skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0),
        }
        if task == "multiclass":
            expected["auroc"] = skm.roc_auc_score(y, prob, multi_class="ovr", average="macro")
        for name, value in expected.items():
            assert aggregate(name, task, y, prob) == pytest.approx(value, abs=SKLEARN_TOL), (task, name)
    y, prob = classification_example("multilabel", seed)
    pred = (prob >= 0.5).astype(int)
    expected = {"auroc": skm.roc_auc_score(y, prob, average="macro"), "accuracy": skm.accuracy_score(y, pred),
                "macro_f1": skm.f1_score(y, pred, average="macro", zero_division=0),
                "balanced_accuracy": np.mean([skm.balanced_accuracy_score(y[:, j], pred[:, j])
                                              for j in range(y.shape[1])]),
                "brier": np.mean([skm.brier_score_loss(y[:, j], prob[:, j]) for j in range(y.shape[1])])}
    for name, value in expected.items():
        assert aggregate(name, "multilabel", y, prob) == pytest.approx(value, abs=SKLEARN_TOL), name


def test_finding10_weighted_bootstrap_metrics_equal_their_registered_aggregate():
    """What the bootstrap resamples by name is the registered metric: with unit weights it gives the aggregate."""
    from medrival.stats.weighted import METRIC_NAMES, weighted_metric

    assert METRIC_NAMES == metric_names(bootstrap="weighted")
    for task in ("binary", "multiclass", "multilabel"):
        y, prob = classification_example(task, seed=3)
        ones = np.ones((1, y.shape[0]), dtype=np.int64)
        for name in METRIC_NAMES:
            expected = metric_spec(name).aggregate(y, prob, task=task)
            assert weighted_metric(name, y, prob, ones, task=task)[0] == pytest.approx(expected, abs=1e-12), \
                (task, name)


# ------------------------------------------------------------------------------ the old lists are aliases


def test_finding10_old_metric_lists_are_computed_from_the_registry():
    from medrival.cli import compare_commands
    from medrival.metrics import vqa
    from medrival.report import tables
    from medrival.stats import vqa_arms, weighted

    vqa_columns = metric_specs(source="score_answers")
    assert vqa.VQA_METRICS == {spec.name: spec.population for spec in vqa_columns}
    assert vqa.OPEN_METRICS == {spec.name: spec.per_item for spec in vqa_columns if spec.per_item_path}
    assert vqa.LOWER_IS_BETTER == {"undecided_rate"}
    assert weighted.LOWER_IS_BETTER == lower_is_better_names()
    assert vqa_arms.VQA_METRICS == ("closed_accuracy", "open_token_f1") == metric_names(source="score_answers",
                                                                                          headline=True)
    assert tables.PREFERRED_METRICS == metric_names(headline=True)
    assert tables.VQA_METRIC_ORDER == metric_names(task="vqa")
    assert compare_commands.VQA_PER_ITEM == tuple(vqa.VQA_METRICS)
    assert [c.split(" ")[0] for c in compare_commands.BOOTSTRAPPED] == list(weighted.METRIC_NAMES)


def test_finding10_registry_declarations_are_consistent():
    labels = [spec.label for spec in metric_specs()]
    assert len(labels) == len(set(labels))
    assert [spec.order for spec in metric_specs()] == list(range(len(METRIC_REGISTRY)))
    for spec in metric_specs():
        assert callable(spec.aggregate) and spec.description, spec.name
        assert (spec.population is not None) == spec.is_vqa, spec.name  # a VQA metric says which questions
        if spec.per_item_path:
            assert spec.per_item(["a b"], ["a b"]).tolist() == [1.0], spec.name  # a perfect answer scores 1
        if spec.bootstrap == "item_mean":
            assert spec.column is not None
    with pytest.raises(ValueError, match="tasks must be among"):
        type(metric_spec("auroc"))(name="x", label="x", tasks=("segmentation",), higher_is_better=True,
                                   source="classification", aggregate_path="m:f")


def test_finding10_registry_imports_without_numpy_or_torch():
    code = ("import sys, medrival.metrics.registry as r; r.metric_names(); "
            "print(sorted(m for m in ('numpy', 'pandas', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
