"""Item-mean bootstrap (``medrival.stats.item_means``) and generative VQA / option-scoring cells in RQ1-RQ3, the
per-arm summaries and the HTML report, on a hand-built store that follows the generative track's contract."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medrival.core.errors import DataError
from medrival.store import ResultStore
from medrival.store.results import CellRecord

IMAGES, PER_IMAGE = 40, 3
RESAMPLES = 400


# ------------------------------------------------------------------------------------------- item means


def _clustered(rng, n_clusters: int, per: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores with a shared effect per cluster (correlated within), and cluster ids that are not in order."""
    effect = rng.normal(0, spread, n_clusters)
    clusters = np.repeat(rng.permutation(n_clusters), per)
    return effect[clusters] + rng.normal(0, 0.5, clusters.size), clusters.astype(str)


def _rebuilt(values_by_draw: list[np.ndarray], clusters, n_resamples: int, seed: int, side: int | None):
    """Slow reference: every resample rebuilt item by item from the same counts (and draw picks) as the fast path,
    its value the mean over the picked draws of the plain item mean."""
    from medrival.stats.bootstrap import _counts, _design, _generator

    design = _design(clusters, values_by_draw[0])
    members = [np.flatnonzero(design.units == u) for u in range(design.n_units)]
    out = []
    for k, start in enumerate(range(0, n_resamples, design.chunk)):
        b = min(design.chunk, n_resamples - start)
        counts = _counts(_generator(seed, k), b, design.n_units)
        picks = _counts(_generator(seed, k, side), b, len(values_by_draw)) if side is not None else np.ones((b, 1))
        for row, pick in zip(counts, picks):
            items = np.concatenate([np.repeat(members[u], c) for u, c in enumerate(row) if c])
            means = [values[items].mean() for values in values_by_draw]
            out.append(sum(m * p for m, p in zip(means, pick)) / pick.sum())
    return np.array(out)


def test_mean_ci_equals_explicitly_rebuilt_resamples():
    from medrival.stats.item_means import mean_ci

    values, clusters = _clustered(np.random.default_rng(1), 150, 2)  # 300 items: two chunks of resamples
    result = mean_ci(values, clusters, n_resamples=1500, seed=7)
    boot = _rebuilt([values], clusters, 1500, 7, None)
    low, high = np.quantile(boot, [0.025, 0.975])
    assert result.low == pytest.approx(low, abs=1e-12) and result.high == pytest.approx(high, abs=1e-12)
    assert result.estimate == values.mean() and result.n_clusters == 150 and result.n_resamples == 1500
    assert mean_ci(values, clusters, n_resamples=1500, seed=7) == result  # identical run to run
    assert mean_ci(values, clusters, n_resamples=1500, seed=8).low != result.low


def test_paired_and_hierarchical_equal_rebuilt_resamples():
    from medrival.stats.item_means import paired_hierarchical_mean_bootstrap, paired_mean_bootstrap

    rng = np.random.default_rng(2)
    a, clusters = _clustered(rng, 60, 3)
    b = a - 0.2 + rng.normal(0, 0.3, a.size)
    paired = paired_mean_bootstrap(a, b, clusters, n_resamples=800, seed=3, metric="token_f1")
    d = _rebuilt([a], clusters, 800, 3, None) - _rebuilt([b], clusters, 800, 3, None)
    assert (paired.low, paired.high) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])), abs=1e-12)
    p = min(1.0, 2 * min((np.sum(d <= 0) + 1) / 801, (np.sum(d >= 0) + 1) / 801))
    assert paired.p_value == pytest.approx(p) and paired.metric == "token_f1"
    assert paired.difference == pytest.approx(a.mean() - b.mean())
    # Several draws: each side's picks come from its own stream, the cluster resample is shared.
    draws_a, draws_b = [a, a + 0.1], [b, b - 0.1, b + 0.05]
    hier = paired_hierarchical_mean_bootstrap(draws_a, draws_b, clusters, n_resamples=800, seed=3)
    d = _rebuilt(draws_a, clusters, 800, 3, 0) - _rebuilt(draws_b, clusters, 800, 3, 1)
    assert (hier.low, hier.high) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])), abs=1e-12)
    assert hier.estimate_a == pytest.approx(np.mean([v.mean() for v in draws_a]))
    one = paired_hierarchical_mean_bootstrap([a], [b], clusters, n_resamples=800, seed=3, metric="token_f1")
    assert (one.low, one.high, one.p_value) == (paired.low, paired.high, paired.p_value)


def test_hierarchical_ci_with_identical_draws_equals_the_plain_ci_and_spread_widens_it():
    from medrival.stats.item_means import hierarchical_mean_ci, mean_ci

    values, clusters = _clustered(np.random.default_rng(4), 80, 2)
    plain = mean_ci(values, clusters, n_resamples=500, seed=1)
    same = hierarchical_mean_ci([values, values, values], clusters, n_resamples=500, seed=1)
    assert (same.low, same.high) == pytest.approx((plain.low, plain.high), abs=1e-12)
    spread = hierarchical_mean_ci([values - 0.5, values, values + 0.5], clusters, n_resamples=500, seed=1)
    assert spread.high - spread.low > plain.high - plain.low


def test_mean_ci_coverage_on_simulated_clustered_data():
    from medrival.stats.item_means import mean_ci

    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(300):
        values, clusters = _clustered(rng, 60, 3, spread=0.8)  # true mean 0
        interval = mean_ci(values, clusters, n_resamples=500, seed=int(rng.integers(1 << 30)))
        hits += interval.low <= 0.0 <= interval.high
    assert 0.92 <= hits / 300 <= 0.98


def test_ignoring_clusters_gives_a_narrower_ci():
    from medrival.stats.item_means import mean_ci

    values, clusters = _clustered(np.random.default_rng(6), 50, 6, spread=1.0)
    by_image = mean_ci(values, clusters, n_resamples=1000, seed=0)
    by_item = mean_ci(values, n_resamples=1000, seed=0)
    assert by_item.high - by_item.low < 0.75 * (by_image.high - by_image.low)
    assert by_image.n_clusters == 50 and by_item.n_clusters == 300


def test_item_mean_inputs_are_checked():
    from medrival.stats.item_means import mean_ci, paired_mean_bootstrap

    with pytest.raises(DataError, match="NaN"):
        mean_ci([1.0, np.nan])
    with pytest.raises(DataError, match="same items"):
        paired_mean_bootstrap([1.0, 0.0], [1.0, 0.0, 1.0])
    assert np.isnan(mean_ci([]).low)


# ------------------------------------------------------------------------------------------- the store


def _vqa_frame(rng, dataset: str, skill: float, closed_only: bool) -> pd.DataFrame:
    """One row per question: 40 images x 3 questions, closed (yes/no) and open, per-item scores per the contract."""
    n = IMAGES * PER_IMAGE
    closed = np.ones(n, bool) if closed_only else np.tile([True, True, False], IMAGES)
    yes = rng.random(n) < 0.5
    right = rng.random(n) < skill
    f1 = np.clip(skill + rng.normal(0, 0.25, n), 0, 1)
    prob_yes = np.where(yes == right, 0.5 + 0.4 * rng.random(n), 0.5 - 0.4 * rng.random(n))
    answers = np.where(closed, np.where(yes, "yes", "no"), "left lung")
    return pd.DataFrame({
        "sample_id": [f"{dataset}/q{i}" for i in range(n)], "cluster_id": [f"img{i // PER_IMAGE}" for i in range(n)],
        "answer_type": np.where(closed, "closed", "open"), "question": [f"question {i}?" for i in range(n)],
        "answer": answers, "response": np.where(right, answers, "something else"),
        "extracted": np.where(right, answers, "else"), "closed_accuracy": np.where(closed, right * 1.0, np.nan),
        "exact_match": right * 1.0, "token_f1": np.where(closed, right * 1.0, f1), "token_recall": f1,
        "bleu1": f1, "rouge_l": f1, "open_recall_at_0_75": (f1 >= 0.75) * 1.0,
        "prob_yes": np.where(closed, prob_yes, np.nan), "label_yes": np.where(closed, yes * 1.0, np.nan),
        "sg_sex": np.where(rng.random(n) < 0.5, "female", "male")})  # must not pull VQA cells into subgroups


def _option_frame(rng, skill: float) -> pd.DataFrame:
    labels = rng.integers(0, 2, 100)
    p = np.clip(0.5 + (labels - 0.5) * skill + rng.normal(0, 0.2, 100), 0.01, 0.99)
    ids = [f"cls/s{i}" for i in range(100)]
    return pd.DataFrame({"sample_id": ids, "cluster_id": ids, "label": labels, "prediction": (p > 0.5) * 1,
                         "prob_normal": 1 - p, "prob_pneumonia": p})


# (dataset, domain, model, role, method, seeds, skill); the OOD dataset has closed questions only.
CELLS = [
    ("vqa-id", "ID", "spec-vlm", "specialist", "vqa_zero_shot", 1, 0.6),
    ("vqa-id", "ID", "gen-vlm", "generalist", "vqa_zero_shot", 1, 0.5),
    ("vqa-id", "ID", "gen-vlm", "generalist", "vqa_lora", 2, 0.8),
    ("vqa-id", "ID", "spec-vlm", "specialist", "vqa_lora", 1, 0.75),
    ("vqa-ood", "OOD", "spec-vlm", "specialist", "vqa_zero_shot", 1, 0.4),
    ("vqa-ood", "OOD", "gen-vlm", "generalist", "vqa_zero_shot", 1, 0.55),
    ("vqa-ood", "OOD", "gen-vlm", "generalist", "vqa_lora", 1, 0.7),
    ("vqa-ood", "OOD", "spec-vlm", "specialist", "vqa_lora", 1, 0.6),
    ("cls-id", "ID", "spec-vlm", "specialist", "option_zero_shot", 1, 0.5),
    ("cls-id", "ID", "gen-vlm", "generalist", "option_zero_shot", 1, 0.3),
]


def _save(store: ResultStore, rng, dataset, domain, model, role, method, seed, skill) -> None:
    task = "binary" if dataset == "cls-id" else "vqa"
    frame = _option_frame(rng, skill) if task == "binary" else \
        _vqa_frame(rng, dataset, skill, closed_only=dataset == "vqa-ood")
    spec = {"model": model, "dataset": dataset, "method": method, "role": role, "domain": domain,
            "modality": "xray", "task": task, "budget": "full", "seed": seed, "draw": 0,
            "pair": "gen-vlm" if role == "specialist" else None}
    metrics = {"auroc": 0.7} if task == "binary" else {"closed_accuracy": float(frame["closed_accuracy"].mean())}
    store.save(CellRecord(cell_id=f"{dataset}-{model}-{method}-{seed}", status="done", spec=spec, metrics=metrics,
                          cost={"trainable_params": 0 if "zero_shot" in method else 1000, "wall_s": 1.0}), frame)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = ResultStore(tmp_path_factory.mktemp("vqa"))
    rng = np.random.default_rng(0)
    for dataset, domain, model, role, method, seeds, skill in CELLS:
        for seed in range(seeds):
            _save(store, rng, dataset, domain, model, role, method, seed, skill)
    return store


@pytest.fixture(scope="module")
def tables(store):
    from medrival.stats.questions import research_questions

    return research_questions(store, n_resamples=RESAMPLES, seed=0)


def _closed_mean(store, cell_id: str) -> float:
    frame = store.predictions(cell_id)
    return float(frame.loc[frame["answer_type"] == "closed", "closed_accuracy"].mean())


# ------------------------------------------------------------------------------------------- questions


def test_planned_comparisons_pair_the_same_off_the_shelf_method(store):
    from medrival.stats.questions import _finished_cells, planned_comparisons

    plans = {(p["rq"], p["dataset"], p["a"].label, p["b"].label, p.get("versus"))
             for p in planned_comparisons(_finished_cells(store, include_vqa=True))}
    assert plans == {
        ("RQ1", "vqa-id", "spec-vlm+vqa_zero_shot", "gen-vlm+vqa_zero_shot", None),
        ("RQ1", "cls-id", "spec-vlm+option_zero_shot", "gen-vlm+option_zero_shot", None),
        ("RQ2", "vqa-id", "gen-vlm+vqa_lora", "spec-vlm+vqa_zero_shot", "off-the-shelf specialist"),
        ("RQ2", "vqa-id", "gen-vlm+vqa_lora", "spec-vlm+vqa_lora", "adapted specialist"),
        ("RQ3", "vqa-ood", "gen-vlm+vqa_lora", "spec-vlm+vqa_zero_shot", "off-the-shelf specialist"),
        ("RQ3", "vqa-ood", "gen-vlm+vqa_lora", "spec-vlm+vqa_lora", "adapted specialist")}
    # Without VQA (subgroups, operating points, compare) only the option-scoring pair is left.
    assert {p["dataset"] for p in planned_comparisons(_finished_cells(store))} == {"cls-id"}


def test_vqa_rows_per_metric_with_plain_means(tables, store):
    rq1 = tables["RQ1"].set_index(["dataset", "metric"])
    assert set(rq1.index) == {("vqa-id", "closed_accuracy"), ("vqa-id", "token_f1"), ("cls-id", "auroc")}
    assert rq1.loc[("vqa-id", "closed_accuracy"), "task"] == "vqa" and rq1.loc[("cls-id", "auroc"), "task"] == "binary"
    row = rq1.loc[("vqa-id", "closed_accuracy")]
    assert row["estimate_a"] == pytest.approx(_closed_mean(store, "vqa-id-spec-vlm-vqa_zero_shot-0"), abs=1e-12)
    assert row["estimate_b"] == pytest.approx(_closed_mean(store, "vqa-id-gen-vlm-vqa_zero_shot-0"), abs=1e-12)
    assert row["n_items"] == 80 and row["n_clusters"] == IMAGES and row["test"] == "paired-bootstrap"
    f1 = rq1.loc[("vqa-id", "token_f1")]
    frame = store.predictions("vqa-id-spec-vlm-vqa_zero_shot-0")
    assert f1["estimate_a"] == pytest.approx(frame.loc[frame["answer_type"] == "open", "token_f1"].mean())
    assert f1["n_items"] == 40 and f1["low"] <= f1["difference"] <= f1["high"]
    # The two-seed LoRA generalist: mean over its seeds, resampled hierarchically.
    rq2 = tables["RQ2"].set_index(["versus", "metric"])
    lora = rq2.loc[("off-the-shelf specialist", "closed_accuracy")]
    seeds = [_closed_mean(store, f"vqa-id-gen-vlm-vqa_lora-{s}") for s in (0, 1)]
    assert lora["estimate_a"] == pytest.approx(np.mean(seeds)) and lora["draws_a"] == 2
    assert lora["test"] == "paired-hierarchical-bootstrap" and lora["b"] == "spec-vlm+vqa_zero_shot"
    # The closed-only OOD dataset has no token F1 row.
    assert set(tables["RQ3"]["metric"]) == {"closed_accuracy"} and len(tables["RQ3"]) == 2


def test_one_holm_family_per_table_and_reproducible_cis(tables, store):
    from medrival.stats.multiple import holm
    from medrival.stats.questions import research_questions

    for table in tables.values():
        np.testing.assert_allclose(table["p_holm"], holm(table["p_value"].to_numpy()))
    again = research_questions(store, n_resamples=RESAMPLES, seed=0)
    for rq, table in tables.items():
        pd.testing.assert_frame_equal(again[rq], table)
    other = research_questions(store, n_resamples=RESAMPLES, seed=1)["RQ1"]
    assert not np.allclose(other["low"], tables["RQ1"]["low"])


def test_brier_verdicts_are_mirrored_only_on_brier_rows(store):
    from medrival.stats.questions import research_questions

    rq1 = research_questions(store, metric="brier", n_resamples=RESAMPLES, seed=0)["RQ1"].set_index("metric")
    for metric, row in rq1.iterrows():
        if row["verdict"] != "tie":
            better = row["difference"] < 0 if metric == "brier" else row["difference"] > 0
            assert (row["verdict"] == "win") == better


def test_summary_lines_name_the_off_the_shelf_method_and_the_metric(tables):
    from medrival.stats.questions import method_summaries

    rq1 = method_summaries("RQ1", tables["RQ1"])
    assert len(rq1) == 3
    assert any(line.startswith("specialist (off-the-shelf, vqa_zero_shot) ≥ generalist (off-the-shelf, "
                               "vqa_zero_shot) in ") and "1 ID token_f1 comparisons" in line for line in rq1)
    rq2 = method_summaries("RQ2", tables["RQ2"])
    assert len(rq2) == 4 and all(line.startswith("generalist+vqa_lora ≥ ") for line in rq2)
    assert len(method_summaries("RQ3", tables["RQ3"])) == 2  # one metric: no metric in the scope
    assert "OOD comparisons" in method_summaries("RQ3", tables["RQ3"])[0]


def test_arm_summaries_have_one_row_per_vqa_metric(store):
    from medrival.stats.questions import arm_summaries

    arms = arm_summaries(store, n_resamples=RESAMPLES, seed=0)
    vqa = arms[arms["task"] == "vqa"].set_index(["dataset", "arm", "metric"])
    assert len(vqa) == 4 * 2 + 4  # vqa-id: closed and open; vqa-ood: closed only
    row = vqa.loc[("vqa-id", "spec-vlm+vqa_zero_shot", "closed_accuracy")]
    assert row["estimate"] == pytest.approx(_closed_mean(store, "vqa-id-spec-vlm-vqa_zero_shot-0"), abs=1e-12)
    assert row["low"] <= row["estimate"] <= row["high"] and row["n_items"] == 80 and row["n_clusters"] == IMAGES
    assert np.isnan(row["ece"]) and np.isnan(row["brier"])
    assert vqa.loc[("vqa-id", "gen-vlm+vqa_lora", "token_f1"), "draws"] == 2
    cls = arms[arms["task"] == "binary"]
    assert set(cls["metric"]) == {"auroc"} and len(cls) == 2 and (cls["ece"] >= 0).all()


def test_subgroups_and_operating_points_ignore_vqa_cells(store):
    from medrival.stats.study_operating_points import study_operating_points
    from medrival.stats.study_subgroups import study_subgroups

    groups, gaps = study_subgroups(store, n_resamples=50)
    assert groups.empty and gaps.empty  # only the VQA frames carry sg_ columns
    points = study_operating_points(store, n_resamples=50)
    assert set(points["dataset"]) == {"cls-id"}


def test_report_shows_vqa_rows(store, tmp_path):
    from medrival.report.html import write_report

    path = write_report(store.root, tmp_path / "report.html", n_resamples=100)
    html = path.read_text(encoding="utf-8")
    rq1 = html[html.index('id="rq1"'):html.index('id="rq2"')]
    assert "spec-vlm+vqa_zero_shot" in rq1 and "<td>closed_accuracy</td>" in rq1 and "<td>token_f1</td>" in rq1
    assert "spec-vlm+option_zero_shot" in rq1 and "<td>auroc</td>" in rq1
    assert "difference in closed_accuracy" in rq1 and "difference in auroc" in rq1  # one forest panel each
    datasets = html[html.index('id="datasets"'):html.index('id="subgroups"')]
    assert "vqa-id (token_f1)" in datasets and "closed-question accuracy" in datasets
    assert "<td>vqa-ood</td><td>gen-vlm+vqa_lora</td><td>full</td><td>1</td><td>closed_accuracy</td>" in datasets
    rq3 = pd.read_csv(tmp_path / "rq3.csv")
    assert set(rq3["task"]) == {"vqa"} and set(rq3["metric"]) == {"closed_accuracy"}
    assert 'id="vqa"' in html and "something else" in html  # the wrong-answer examples still shown


def test_compare_gives_one_row_per_vqa_metric_equal_to_the_rq_table(store, tables):
    from medrival.stats.compare import compare

    frame = compare(store, "spec-vlm:vqa_zero_shot", "gen-vlm:vqa_zero_shot", n_resamples=RESAMPLES, seed=0)
    rows = frame.set_index(["dataset", "metric"])
    assert set(rows.index) == {("vqa-id", "closed_accuracy"), ("vqa-id", "token_f1"), ("vqa-ood", "closed_accuracy")}
    rq1 = tables["RQ1"].set_index(["dataset", "metric"])
    for key in (("vqa-id", "closed_accuracy"), ("vqa-id", "token_f1")):
        for column in ("estimate_a", "estimate_b", "difference", "low", "high", "p_value"):
            assert rows.loc[key, column] == pytest.approx(rq1.loc[key, column])
    assert frame["delong_p"].isna().all()
    from medrival.stats.multiple import holm

    np.testing.assert_allclose(frame["p_holm"], holm(frame["p_value"].to_numpy()))
