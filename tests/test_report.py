"""The v0 report: terminal table, Markdown and CSV from a results frame."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from rich.console import Console

from medrival.core.errors import MedrivalError
from medrival.report import metric_columns, results_table, to_markdown, write_reports
from medrival.store import CellRecord, ResultStore

LONG_ERROR = "ValueError: " + "the checkpoint shape does not match the model " * 5


def _record(cell_id, model, dataset, method, seed, status="done", metrics=None, error=None, synthetic=True):
    spec = {"model": model, "dataset": dataset, "method": method, "seed": seed, "method_config": {},
            "role": "specialist" if "med" in model else "generalist", "modality": "xray",
            "domain": "OOD" if dataset.endswith("ood") else "ID", "task": "binary", "synthetic": synthetic}
    return CellRecord(cell_id, spec, status, metrics or {}, cost={"wall_s": 2.3456, "trainable_params": 10},
                      error=error)


@pytest.fixture
def frame(tmp_path) -> pd.DataFrame:
    store = ResultStore(tmp_path / "store")
    store.save(_record("c1", "tiny-clip", "toy-xray", "linear_probe", 0,
                       metrics={"auroc": 0.857142857, "accuracy": 0.75, "macro_f1": float("nan"),
                                "brier": 0.1234567, "balanced_accuracy": 0.7}))
    store.save(_record("c2", "tiny-medclip", "toy-xray", "linear_probe", 0,
                       metrics={"auroc": 0.91, "accuracy": 0.8, "macro_f1": 0.66666, "brier": 0.2,
                                "balanced_accuracy": 0.5}))
    store.save(_record("c3", "tiny-medclip", "toy-xray-ood", "lora", 1, status="failed",
                       error="ValueError: bad | value\nsecond line"))
    return store.results_frame()


def test_metric_columns_preferred_order_then_alphabetical(frame):
    frame = frame.assign(aaa=1.0, zzz=2.0)
    assert metric_columns(frame) == ["auroc", "accuracy", "balanced_accuracy", "macro_f1", "aaa", "brier", "zzz"]


def test_vqa_metrics_follow_the_headline_ones_and_counts_are_not_metrics():
    from medrival.metrics.vqa import VQA_METRICS
    from medrival.report.tables import TERMINAL_METRICS, VQA_METRIC_ORDER

    # Every per-question VQA metric has its place, in the order of medrival.metrics.vqa.
    assert [m for m in VQA_METRIC_ORDER if m in VQA_METRICS] == list(VQA_METRICS)
    names = ["zzz", "open_bleu1", "undecided_rate", "open_token_f1", "yes_no_auroc", "closed_accuracy", "auroc",
             "n_yes_no", "n_closed_scored_open", "n_multiple_choice", "n_choice", "n_open", "n_closed"]
    frame = pd.DataFrame({name: [0.5] for name in names})
    assert metric_columns(frame) == ["auroc", "closed_accuracy", "open_token_f1", "yes_no_auroc", "undecided_rate",
                                     "open_bleu1", "zzz"]
    assert {"closed_accuracy", "open_token_f1"} <= TERMINAL_METRICS
    assert not {"token_f1", "closed_auroc", "exact_match"} & TERMINAL_METRICS


def test_markdown_content(frame):
    text = to_markdown(frame, title="Toy study")
    lines = text.splitlines()
    assert lines[0] == "# Toy study"
    assert "3 cells: 2 done, 1 failed." in text
    assert "synthetic" in text.lower()
    header = next(line for line in lines if line.startswith("| model"))
    assert header == ("| model | role | dataset | modality | domain | method | seed | auroc | accuracy | "
                      "balanced_accuracy | macro_f1 | brier | wall_s | status | error |")
    rows = [line for line in lines if line.startswith("| tiny")]
    assert len(rows) == 3
    assert "| 0.857 | 0.750 | 0.700 | n/a | 0.123 | 2.35 | done |" in rows[0]
    assert "| 0.910 | 0.800 | 0.500 | 0.667 |" in rows[1]
    failed = rows[2]
    assert "| OOD |" in failed and "| failed |" in failed
    assert "ValueError: bad \\| value second line" in failed  # pipe escaped, newline flattened
    cells = failed.replace("\\|", "").split("|")
    assert len(cells) == header.count("|") + 1  # the escaped pipe did not add a column
    assert failed.count("n/a") == 5


def test_markdown_cuts_errors_in_the_table_keeps_them_whole_below_and_omits_note_for_real_data(frame):
    frame = frame.copy()
    frame.loc[frame["status"] == "failed", "error"] = LONG_ERROR
    frame["synthetic"] = False
    text = to_markdown(frame)
    assert "synthetic" not in text.lower()
    shown = next(line for line in text.splitlines() if "failed |" in line).split(" | ")[-1].rstrip(" |")
    assert shown.endswith("…") and len(shown) <= 80 and LONG_ERROR.startswith(shown[:-1])
    # ... and the whole message follows the table, never cut.
    assert "## Failed cells: full errors" in text and LONG_ERROR.strip() in text


def test_synthetic_note_from_spec_column():
    frame = pd.DataFrame({"model": ["m"], "status": ["done"], "auroc": [0.5],
                          "spec": [{"model": "m", "synthetic": True}]})
    assert "synthetic" in to_markdown(frame).lower()
    frame["spec"] = [{"model": "m"}]
    assert "synthetic" not in to_markdown(frame).lower()


def test_empty_frame_says_no_results(tmp_path):
    empty = ResultStore(tmp_path).results_frame()
    assert "no results" in to_markdown(empty)
    assert "no results" in to_markdown(pd.DataFrame())
    console = Console(record=True, width=200)
    console.print(results_table(empty))
    assert "no results" in console.export_text()
    paths = write_reports(empty, tmp_path / "out")
    assert "no results" in paths["markdown"].read_text()


def test_rich_table_renders(frame):
    frame = frame.copy()
    frame.loc[frame["status"] == "failed", "error"] = "KeyError: [/bold] [red]not markup"
    console = Console(record=True, width=200)
    console.print(results_table(frame, title="Toy study"))
    text = console.export_text()
    for expected in ("Toy study", "tiny-clip", "tiny-medclip", "0.857", "n/a", "failed",
                     "KeyError: [/bold] [red]not markup", "2 done, 1 failed"):
        assert expected in text


def test_write_reports_markdown_and_csv(frame, tmp_path):
    out = tmp_path / "reports" / "nested"
    paths = write_reports(frame, out, stem="study1")
    assert paths == {"markdown": out / "study1.md", "csv": out / "study1.csv"}
    assert paths["markdown"].read_text() == to_markdown(frame)
    back = pd.read_csv(paths["csv"])
    assert list(back.columns) == list(frame.columns) and len(back) == len(frame)
    for col in frame.columns:
        for want, got in zip(frame[col], back[col]):
            if isinstance(want, float) and math.isnan(want) or want is None:
                assert pd.isna(got), col
            elif isinstance(want, float):
                assert got == want, col  # full precision
            else:
                assert str(got) == str(want), col
    assert back.loc[0, "auroc"] == 0.857142857
    assert sorted(p.name for p in out.iterdir()) == ["study1.csv", "study1.md"]  # no temp files left


def test_write_reports_is_atomic_and_checks_its_directory(frame, tmp_path, monkeypatch):
    paths = write_reports(frame, tmp_path)
    before = paths["csv"].read_text()

    def fail(self, path, *args, **kwargs):
        with open(path, "w") as fh:
            fh.write("half,a,csv")
        raise OSError("disk full")
    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    with pytest.raises(OSError):
        write_reports(frame.iloc[:1], tmp_path)
    assert paths["csv"].read_text() == before  # the old report is intact
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["results.csv", "results.md"]
    monkeypatch.undo()
    a_file = tmp_path / "results.md"
    with pytest.raises(MedrivalError, match="is a file"):
        write_reports(frame, a_file)
    with pytest.raises(MedrivalError, match="plain file name"):
        write_reports(frame, tmp_path, stem="../escape")
