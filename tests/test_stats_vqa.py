"""Item-mean bootstrap (``medrival.stats.item_means``) and generative VQA / option-scoring cells in RQ1-RQ3, the
per-arm summaries and the HTML report, on a hand-built store that follows the generative track's contract."""
from __future__ import annotations

import math

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
    paired = paired_mean_bootstrap(a, b, clusters, n_resamples=800, seed=3, metric="open_token_f1")
    d = _rebuilt([a], clusters, 800, 3, None) - _rebuilt([b], clusters, 800, 3, None)
    assert (paired.low, paired.high) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])), abs=1e-12)
    tail = min(np.sum(d <= 0), np.sum(d >= 0))
    assert tail == 0  # a strong effect: no resample crosses 0, so the p rule takes the normal tail below 2/801
    p = min(2 / 801, math.erfc(abs(a.mean() - b.mean()) / np.std(d, ddof=1) / math.sqrt(2)))
    assert paired.p_value == pytest.approx(p, rel=1e-9) and paired.metric == "open_token_f1"
    assert paired.p_value < 1e-12 and paired.p_floor == 0.0
    assert paired.difference == pytest.approx(a.mean() - b.mean())
    # Several draws: each side's picks come from its own stream, the cluster resample is shared.
    draws_a, draws_b = [a, a + 0.1], [b, b - 0.1, b + 0.05]
    hier = paired_hierarchical_mean_bootstrap(draws_a, draws_b, clusters, n_resamples=800, seed=3)
    d = _rebuilt(draws_a, clusters, 800, 3, 0) - _rebuilt(draws_b, clusters, 800, 3, 1)
    assert (hier.low, hier.high) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])), abs=1e-12)
    assert hier.estimate_a == pytest.approx(np.mean([v.mean() for v in draws_a]))
    one = paired_hierarchical_mean_bootstrap([a], [b], clusters, n_resamples=800, seed=3, metric="open_token_f1")
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
    """One row per question, with the columns of a VQA cell's stored predictions: 40 images x 3 questions, yes/no
    (scored as closed) and open; every fourth image's third question is a choice question whose reference is not
    among its options, so it is scored as open (``closed`` as asked, ``open`` as scored)."""
    n = IMAGES * PER_IMAGE
    closed = np.ones(n, bool) if closed_only else np.tile([True, True, False], IMAGES)
    moved = ~closed & (np.arange(n) // PER_IMAGE % 4 == 0)
    yes = rng.random(n) < 0.5
    right = rng.random(n) < skill
    undecided = closed & ~right & (rng.random(n) < 0.4)
    f1 = np.clip(skill + rng.normal(0, 0.25, n), 0, 1)
    prob_yes = np.where(yes == right, 0.5 + 0.4 * rng.random(n), 0.5 - 0.4 * rng.random(n))
    answers = np.where(closed, np.where(yes, "yes", "no"), "left lung")
    extracted = np.where(right, answers, np.where(yes, "no", "yes")).astype(object)
    extracted[~closed | undecided] = None
    on_closed, on_open = (lambda v: np.where(closed, v, np.nan)), (lambda v: np.where(closed, np.nan, v))
    return pd.DataFrame({
        "sample_id": [f"{dataset}/q{i}" for i in range(n)], "cluster_id": [f"img{i // PER_IMAGE}" for i in range(n)],
        "answer_type": np.where(closed | moved, "closed", "open"),
        "form": np.where(closed, "yes_no", np.where(moved, "choice", "open")),
        "options": np.where(moved, '["right lung", "heart"]', None), "question": [f"question {i}?" for i in range(n)],
        "answer": answers, "response": np.where(right, answers, "something else"),
        "prob_yes": on_closed(prob_yes), "label_yes": on_closed(yes * 1.0), "failure": None,
        "scored_as": np.where(closed, "yes_no", "open"),
        "score_note": np.where(moved, "choice_reference_not_in_options", None), "extracted": extracted,
        "decided_by": np.where(closed & ~undecided, "rules", None),
        "closed_accuracy": on_closed(right * 1.0), "yes_no_accuracy": on_closed(right * 1.0),
        "choice_accuracy": np.nan, "mc_accuracy": np.nan, "undecided_rate": on_closed(undecided * 1.0),
        "open_exact_match": on_open(right * 1.0), "open_token_f1": on_open(f1), "open_token_recall": on_open(f1),
        "open_bleu1": on_open(f1), "open_rouge_l": on_open(f1), "open_recall_at_0_75": on_open((f1 >= 0.75) * 1.0),
        "sg_sex": np.where(rng.random(n) < 0.5, "female", "male")})  # must not pull VQA cells into subgroups


def _vqa_record(cell_id: str, spec: dict, frame: pd.DataFrame, cost: dict | None = None) -> CellRecord:
    """A finished VQA cell as the runner writes it: the cell-level metrics from the per-question frame, the
    rule versions in its spec and cost."""
    from medrival.store.results import current_vqa_rules
    from medrival.study.vqa_cell import vqa_metrics

    rules = current_vqa_rules()
    return CellRecord(cell_id=cell_id, status="done", spec={**spec, "vqa_rules": rules}, metrics=vqa_metrics(frame),
                      cost={**(cost or {}), **{f"{rule}_version": version for rule, version in rules.items()}})


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
    cell_id, cost = f"{dataset}-{model}-{method}-{seed}", {"trainable_params": 0 if "zero_shot" in method else 1000,
                                                            "wall_s": 1.0}
    record = CellRecord(cell_id=cell_id, status="done", spec=spec, metrics={"auroc": 0.7}, cost=cost) \
        if task == "binary" else _vqa_record(cell_id, spec, frame, cost)
    store.save(record, frame)


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
    """closed_accuracy over the questions scored as closed (a choice question scored as open is not one)."""
    frame = store.predictions(cell_id)
    scored_closed = frame["scored_as"].isin(["yes_no", "choice", "multiple_choice"]).to_numpy()
    return float(np.mean(frame["closed_accuracy"].to_numpy(dtype=float)[scored_closed]))


def _open_mean(store, cell_id: str, column: str = "open_token_f1") -> float:
    """An open metric over the questions scored as open (closed-asked ones among them), by hand."""
    frame = store.predictions(cell_id)
    return float(np.mean(frame[column].to_numpy(dtype=float)[(frame["scored_as"] == "open").to_numpy()]))


# ------------------------------------------------------------------------------------------- questions


def test_planned_comparisons_pair_the_same_off_the_shelf_method(store):
    from medrival.stats.questions import finished_cells, planned_comparisons

    plans = {(p["rq"], p["dataset"], p["a"].label, p["b"].label, p.get("versus"))
             for p in planned_comparisons(finished_cells(store, include_vqa=True))}
    assert plans == {
        ("RQ1", "vqa-id", "spec-vlm+vqa_zero_shot", "gen-vlm+vqa_zero_shot", None),
        ("RQ1", "cls-id", "spec-vlm+option_zero_shot", "gen-vlm+option_zero_shot", None),
        ("RQ2", "vqa-id", "gen-vlm+vqa_lora", "spec-vlm+vqa_zero_shot", "off-the-shelf specialist"),
        ("RQ2", "vqa-id", "gen-vlm+vqa_lora", "spec-vlm+vqa_lora", "adapted specialist"),
        ("RQ3", "vqa-ood", "gen-vlm+vqa_lora", "spec-vlm+vqa_zero_shot", "off-the-shelf specialist"),
        ("RQ3", "vqa-ood", "gen-vlm+vqa_lora", "spec-vlm+vqa_lora", "adapted specialist")}
    # Without VQA (subgroups, operating points, compare) only the option-scoring pair is left.
    assert {p["dataset"] for p in planned_comparisons(finished_cells(store))} == {"cls-id"}


def test_vqa_rows_per_metric_with_plain_means(tables, store):
    rq1 = tables["RQ1"].set_index(["dataset", "metric"])
    assert set(rq1.index) == {("vqa-id", "closed_accuracy"), ("vqa-id", "open_token_f1"), ("cls-id", "auroc")}
    assert rq1.loc[("vqa-id", "closed_accuracy"), "task"] == "vqa" and rq1.loc[("cls-id", "auroc"), "task"] == "binary"
    row = rq1.loc[("vqa-id", "closed_accuracy")]
    assert row["estimate_a"] == pytest.approx(_closed_mean(store, "vqa-id-spec-vlm-vqa_zero_shot-0"), abs=1e-12)
    assert row["estimate_b"] == pytest.approx(_closed_mean(store, "vqa-id-gen-vlm-vqa_zero_shot-0"), abs=1e-12)
    assert row["n_items"] == 80 and row["n_clusters"] == IMAGES and row["test"] == "paired-bootstrap"
    # The estimate is the cell's stored metric: one meaning of closed_accuracy everywhere.
    assert row["estimate_a"] == pytest.approx(store.get("vqa-id-spec-vlm-vqa_zero_shot-0").metrics["closed_accuracy"])
    f1 = rq1.loc[("vqa-id", "open_token_f1")]
    assert f1["estimate_a"] == pytest.approx(_open_mean(store, "vqa-id-spec-vlm-vqa_zero_shot-0"))
    assert f1["estimate_a"] == pytest.approx(store.get("vqa-id-spec-vlm-vqa_zero_shot-0").metrics["open_token_f1"])
    # 40 questions scored as open: 30 asked as open and 10 choice questions whose reference is not an option.
    assert f1["n_items"] == 40 and f1["low"] <= f1["difference"] <= f1["high"]
    # The two-seed LoRA generalist: mean over its seeds, resampled hierarchically.
    rq2 = tables["RQ2"].set_index(["versus", "metric"])
    lora = rq2.loc[("off-the-shelf specialist", "closed_accuracy")]
    seeds = [_closed_mean(store, f"vqa-id-gen-vlm-vqa_lora-{s}") for s in (0, 1)]
    assert lora["estimate_a"] == pytest.approx(np.mean(seeds)) and lora["draws_a"] == 2
    assert lora["test"] == "paired-hierarchical-bootstrap" and lora["b"] == "spec-vlm+vqa_zero_shot"
    # The closed-only OOD dataset has no open_token_f1 row.
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
        if row["verdict"] in ("superior", "inferior"):
            better = row["difference"] < 0 if metric == "brier" else row["difference"] > 0
            assert (row["verdict"] == "superior") == better


def test_summary_lines_name_the_off_the_shelf_method_and_the_metric(tables):
    from medrival.stats.questions import method_summaries

    rq1 = method_summaries("RQ1", tables["RQ1"])
    assert len(rq1) == 3
    assert any(line.startswith("specialist (off-the-shelf, vqa_zero_shot) vs generalist (off-the-shelf, "
                               "vqa_zero_shot), 1 ID open_token_f1 comparison (") for line in rq1)
    rq2 = method_summaries("RQ2", tables["RQ2"])
    assert len(rq2) == 4 and all(line.startswith("generalist+vqa_lora vs ") for line in rq2)
    assert len(method_summaries("RQ3", tables["RQ3"])) == 2  # one metric: no metric in the scope
    assert " OOD comparison" in method_summaries("RQ3", tables["RQ3"])[0]


def test_arm_summaries_have_one_row_per_vqa_metric(store):
    from medrival.stats.questions import arm_summaries

    arms = arm_summaries(store, n_resamples=RESAMPLES, seed=0)
    vqa = arms[arms["task"] == "vqa"].set_index(["dataset", "arm", "metric"])
    assert len(vqa) == 4 * 2 + 4  # vqa-id: closed and open; vqa-ood: closed only
    row = vqa.loc[("vqa-id", "spec-vlm+vqa_zero_shot", "closed_accuracy")]
    assert row["estimate"] == pytest.approx(_closed_mean(store, "vqa-id-spec-vlm-vqa_zero_shot-0"), abs=1e-12)
    assert row["low"] <= row["estimate"] <= row["high"] and row["n_items"] == 80 and row["n_clusters"] == IMAGES
    assert np.isnan(row["ece"]) and np.isnan(row["brier"])
    assert vqa.loc[("vqa-id", "gen-vlm+vqa_lora", "open_token_f1"), "draws"] == 2
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
    assert "spec-vlm+vqa_zero_shot" in rq1 and "<td>closed_accuracy</td>" in rq1 and "<td>open_token_f1</td>" in rq1
    assert "spec-vlm+option_zero_shot" in rq1 and "<td>auroc</td>" in rq1
    assert "difference in closed_accuracy" in rq1 and "difference in auroc" in rq1  # one forest panel each
    datasets = html[html.index('id="datasets"'):html.index('id="subgroups"')]
    assert "vqa-id (open_token_f1)" in datasets and "they show closed_accuracy, open_token_f1" in datasets
    assert "<td>vqa-ood</td><td>gen-vlm+vqa_lora</td><td>full</td><td>1</td><td>closed_accuracy</td>" in datasets
    rq3 = pd.read_csv(tmp_path / "rq3.csv")
    assert set(rq3["task"]) == {"vqa"} and set(rq3["metric"]) == {"closed_accuracy"}
    assert 'id="vqa"' in html and "something else" in html  # the wrong-answer examples still shown
    vqa = html[html.index('id="vqa"'):html.index('id="failed"')]
    assert "<th>form</th><th>scored as</th><th>reference</th><th>extracted</th>" in vqa
    assert "10 scored as open (reference not among the options)" in vqa and "undecided" in vqa
    assert 'id="outdated"' not in html  # every VQA cell is current


def test_compare_gives_one_row_per_vqa_metric_equal_to_the_rq_table(store, tables):
    from medrival.stats.compare import compare

    frame = compare(store, "spec-vlm:vqa_zero_shot", "gen-vlm:vqa_zero_shot", n_resamples=RESAMPLES, seed=0)
    rows = frame.set_index(["dataset", "metric"])
    assert set(rows.index) == {("vqa-id", "closed_accuracy"), ("vqa-id", "open_token_f1"),
                               ("vqa-ood", "closed_accuracy")}
    rq1 = tables["RQ1"].set_index(["dataset", "metric"])
    for key in (("vqa-id", "closed_accuracy"), ("vqa-id", "open_token_f1")):
        for column in ("estimate_a", "estimate_b", "difference", "low", "high", "p_value"):
            assert rows.loc[key, column] == pytest.approx(rq1.loc[key, column])
    assert frame["delong_p"].isna().all()
    from medrival.stats.multiple import holm

    np.testing.assert_allclose(frame["p_holm"], holm(frame["p_value"].to_numpy()))


# ------------------------------------------------------------------------------------- one meaning per name


SMALL_IMAGES = 24
RIGHT_SIDE = ("left", "right")
ORGANS = ("heart", "liver", "lung", "kidney")


def _scored_frame(rng, dataset: str, skill: float) -> pd.DataFrame:
    """A per-question frame built like ``medrival.study.vqa_cell.score_vqa``, scored by ``score_answers``: per image
    a yes/no, a choice (some references not among the options: scored as open), a multiple-choice and an open
    question."""
    from medrival.metrics.vqa import score_answers

    rows = []
    for image in range(SMALL_IMAGES):
        yes = rng.random() < 0.5
        side = "both" if image % 6 == 0 else RIGHT_SIDE[image % 2]
        organ = ORGANS[image % 4]
        rows += [("Is there a fracture?", "yes" if yes else "no", "yes_no", None, "closed"),
                 ("Is the lesion in the left or right lung?", side, "choice", RIGHT_SIDE, "closed"),
                 ("Which organ is shown?", "ABCD"[image % 4], "multiple_choice", ORGANS, "closed"),
                 ("What abnormality is seen?", f"mass in the {organ}", "open", None, "open")]
    questions, answers, forms, options, asked = (list(column) for column in zip(*rows))
    responses = []
    for question, answer, form, opts in zip(questions, answers, forms, options):
        right = rng.random() < skill
        if form == "yes_no":
            responses.append(answer.capitalize() if right else ("No." if answer == "yes" else "Yes, there is."))
        elif form == "choice":
            responses.append(f"The {answer} lung." if right else "I cannot tell.")
        elif form == "multiple_choice":
            responses.append(f"({answer})" if right else "(E)")
        else:  # open questions are harder: right half as often
            responses.append(answer if right and rng.random() < 0.5 else f"a small {ORGANS[rng.integers(4)]} lesion")
    scores = score_answers(responses, answers, forms, options, questions=questions)
    n = len(rows)
    frame = pd.DataFrame({
        "sample_id": [f"{dataset}/q{i}" for i in range(n)], "cluster_id": [f"img{i // 4}" for i in range(n)],
        "answer_type": asked, "form": forms, "options": [None if o is None else str(list(o)) for o in options],
        "question": questions, "answer": answers, "response": responses,
        "prob_yes": np.nan, "label_yes": np.nan, "failure": None})
    return pd.concat([frame, scores.drop(columns=["form"])], axis=1)


def _small_vqa_store(root, seed: int = 0) -> ResultStore:
    """An off-the-shelf specialist and its generalist on one VQA dataset (RQ1), written like the runner does."""
    store = ResultStore(root)
    rng = np.random.default_rng(seed)
    base = {"dataset": "vqa-mixed", "method": "vqa_zero_shot", "domain": "ID", "modality": "xray", "task": "vqa",
            "budget": "full", "seed": 0, "draw": 0}
    for model, role, pair, skill in (("spec-vlm", "specialist", "gen-vlm", 0.7), ("gen-vlm", "generalist", None, 0.4)):
        frame = _scored_frame(rng, "vqa-mixed", skill)
        spec = {**base, "model": model, "role": role, "pair": pair}
        store.save(_vqa_record(f"now-{model}", spec, frame, {"trainable_params": 0, "wall_s": 1.0}), frame)
    return store


def _markdown_column(text: str, column: str, model: str) -> str:
    """The text of ``column`` in the row of ``model`` of a results.md table."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    headers = [cell.strip() for cell in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[headers.index("model")] == model:
            return cells[headers.index(column)]
    raise AssertionError(f"no row of {model} in {text}")


def test_token_f1_means_open_questions_everywhere(tmp_path):
    from medrival.metrics.vqa import token_f1
    from medrival.report import write_reports
    from medrival.stats.compare import compare
    from medrival.stats.questions import arm_summaries, research_questions
    from medrival.study.results import load_results
    from test_cli import medrival_cli

    store = _small_vqa_store(tmp_path / "store")
    expected = {}
    for model in ("spec-vlm", "gen-vlm"):
        frame = store.predictions(f"now-{model}")
        is_open = (frame["scored_as"] == "open").to_numpy()
        values = frame["open_token_f1"].to_numpy(dtype=float)
        assert np.isfinite(values[is_open]).all() and np.isnan(values[~is_open]).all()
        expected[model] = float(np.mean(values[is_open]))
        # Open questions include the choice questions whose reference ("both") is not an option.
        assert is_open.sum() == SMALL_IMAGES + SMALL_IMAGES // 6
        # The old meaning (token F1 over every question) is a different number: the test can tell them apart.
        everything = float(np.mean(token_f1(frame["response"], frame["answer"])))
        assert abs(everything - expected[model]) > 0.05

    results = load_results(store.root).set_index("model")
    assert "token_f1" not in results.columns
    for model, value in expected.items():
        assert results.loc[model, "open_token_f1"] == pytest.approx(value, abs=1e-12)
    paths = write_reports(load_results(store.root), tmp_path / "report")
    csv = pd.read_csv(paths["csv"]).set_index("model")
    markdown = paths["markdown"].read_text(encoding="utf-8")
    for model, value in expected.items():
        assert csv.loc[model, "open_token_f1"] == pytest.approx(value, abs=1e-12)
        assert float(_markdown_column(markdown, "open_token_f1", model)) == pytest.approx(value, abs=5e-4)

    rows = compare(store, "spec-vlm", "gen-vlm", n_resamples=200).set_index("metric")
    assert list(rows.index) == ["closed_accuracy", "open_token_f1"]
    rq1 = research_questions(store, n_resamples=200)["RQ1"].set_index("metric")
    arms = arm_summaries(store, n_resamples=200).set_index(["arm", "metric"])
    for table in (rows, rq1):
        assert table.loc["open_token_f1", "estimate_a"] == pytest.approx(expected["spec-vlm"], abs=1e-12)
        assert table.loc["open_token_f1", "estimate_b"] == pytest.approx(expected["gen-vlm"], abs=1e-12)
        assert table.loc["open_token_f1", "n_items"] == SMALL_IMAGES + SMALL_IMAGES // 6
    for model, value in expected.items():
        assert arms.loc[(f"{model}+vqa_zero_shot", "open_token_f1"), "estimate"] == pytest.approx(value, abs=1e-12)
    cli = medrival_cli("compare", str(store.root), "--a", "spec-vlm", "--b", "gen-vlm", "--resamples", "100")
    assert cli.returncode == 0, cli.stderr
    text = " ".join(cli.stdout.replace("│", " ").split())
    assert f"vqa-mixed open_token_f1 {expected['spec-vlm']:.3f} {expected['gen-vlm']:.3f}" in text
    assert "note:" not in cli.stdout + cli.stderr  # nothing outdated here


def _old_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-question frame as the first VQA scoring stored it (token_f1 over every question)."""
    return frame[["sample_id", "cluster_id", "answer_type", "question", "answer", "response"]].assign(
        closed_accuracy=np.where(frame["answer_type"] == "closed", 1.0, np.nan), exact_match=0.0, token_f1=0.9)


def test_old_vqa_cells_are_refused_with_the_rerun_command(tmp_path):
    import warnings

    from medrival.report.html import write_report
    from medrival.stats.compare import compare
    from medrival.stats.questions import research_questions
    from medrival.store import OutdatedResultsWarning, RERUN_COMMAND
    from medrival.study.results import load_results
    from test_cli import medrival_cli

    store = _small_vqa_store(tmp_path / "store")
    current = store.predictions("now-spec-vlm")
    spec = {k: v for k, v in store.get("now-spec-vlm").spec.items() if k != "vqa_rules"}
    old_metrics = {"closed_accuracy": 1.0, "token_f1": 0.9, "exact_match": 0.0, "closed_auroc": 0.8, "n_open": 24}
    # The first scoring's cells: normalisation "1" recorded; an older one with the old names only; and one written
    # under other VQA rules than this medrival's.
    store.save(CellRecord("old-normalisation", spec, "done", old_metrics,
                          {"normalisation_version": "1", "prompt_version": "1"}), _old_frame(current))
    store.save(CellRecord("old-names", {**spec, "seed": 1}, "done", old_metrics), _old_frame(current))
    store.save(CellRecord("other-rules", {**spec, "seed": 2, "vqa_rules": {"prompt": "0"}}, "done",
                          store.get("now-spec-vlm").metrics), current)
    assert RERUN_COMMAND == "medrival run STUDY.yaml --out DIR"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = load_results(store.root)
    notes = [w for w in caught if issubclass(w.category, OutdatedResultsWarning)]
    assert len(notes) == 1
    note = str(notes[0].message)
    assert note.startswith("3 VQA cells in this store were scored by earlier VQA rules")
    assert f"`{RERUN_COMMAND}`" in note and "cell ids changed" in note
    assert set(frame["cell_id"]) == {"now-spec-vlm", "now-gen-vlm"}
    assert not {"token_f1", "exact_match", "closed_auroc"} & set(frame.columns)
    assert len(store.results_frame(include_outdated=True)) == 5

    # The RQ table and compare use the current cells only (the old ones are not extra seeds of the same arm).
    rq1 = research_questions(store, n_resamples=100)["RQ1"].set_index("metric")
    assert (rq1["draws_a"] == 1).all()
    assert rq1.loc["open_token_f1", "estimate_a"] == pytest.approx(store.get("now-spec-vlm").metrics["open_token_f1"])
    with pytest.warns(OutdatedResultsWarning) as warned:
        rows = compare(store, "spec-vlm", "gen-vlm", n_resamples=100).set_index("metric")
    assert [str(w.message) for w in warned] == [note]
    assert rows.loc["open_token_f1", "estimate_a"] == pytest.approx(rq1.loc["open_token_f1", "estimate_a"])

    # The report says the same at the top, and shows no section for the old cells.
    html = write_report(store.root, tmp_path / "report.html", n_resamples=50).read_text(encoding="utf-8")
    assert f'<p class="note" id="outdated">{note}</p>' in html
    assert html.count("<h3>vqa-mixed:") == 2 and "no forms" not in html
    for command in (("compare", str(store.root), "--a", "spec-vlm", "--b", "gen-vlm", "--resamples", "50"),
                    ("report", str(store.root), "--out", str(tmp_path / "cli.html"), "--resamples", "50")):
        result = medrival_cli(*command)
        assert result.returncode == 0, result.stderr
        assert "note: " + note == " ".join(result.stderr.split())


def test_undecided_rate_verdicts_are_lower_is_better(store):
    from medrival.core.errors import UnknownNameError
    from medrival.stats.questions import research_questions

    tables = research_questions(store, n_resamples=RESAMPLES, seed=0,
                                vqa_metrics=("closed_accuracy", "undecided_rate", "open_exact_match"))
    rows = pd.concat(tables.values())
    undecided = rows[rows["metric"] == "undecided_rate"]
    assert len(undecided) == 5 and set(rows[rows["task"] == "vqa"]["metric"]) == {
        "closed_accuracy", "undecided_rate", "open_exact_match"}
    for _, row in rows[rows["task"] == "vqa"].iterrows():
        if row["verdict"] in ("superior", "inferior"):
            better = row["difference"] < 0 if row["metric"] == "undecided_rate" else row["difference"] > 0
            assert (row["verdict"] == "superior") == better
    # The lower-is-better rows are mirrored: a significantly lower undecided rate is superior.
    assert any(row["verdict"] == "superior" and row["high"] < 0 for _, row in undecided.iterrows())
    with pytest.raises(UnknownNameError, match="Did you mean 'open_token_f1'"):
        research_questions(store, vqa_metrics=("token_f1",))


def test_compare_cli_lists_the_vqa_metrics_asked_for(tmp_path):
    from test_cli import medrival_cli

    store = _small_vqa_store(tmp_path / "store")
    result = medrival_cli("compare", str(store.root), "--a", "spec-vlm", "--b", "gen-vlm", "--resamples", "50",
                          "--vqa-metrics", "undecided_rate,mc_accuracy")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "vqa-mixed undecided_rate" in text and "vqa-mixed mc_accuracy" in text and "closed_accuracy" not in text
    bad = medrival_cli("compare", str(store.root), "--a", "spec-vlm", "--b", "gen-vlm", "--vqa-metrics", "token_f1")
    assert bad.returncode != 0 and "Unknown VQA metric 'token_f1'" in bad.stdout + bad.stderr
