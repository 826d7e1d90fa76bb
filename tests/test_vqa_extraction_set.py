"""The written extraction test set (tests/data/vqa_extraction_cases.jsonl): its shape, and the extraction rules'
agreement with the graders' verdicts (the target of benchmarks/vqa_extraction.py)."""
from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "vqa_extraction.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("vqa_extraction_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_set_is_large_varied_and_well_formed():
    cases = _benchmark().load_cases()
    assert len(cases) >= 300 and len({case["id"] for case in cases}) == len(cases)
    forms = Counter(case["form"] for case in cases)
    assert forms["yes_no"] >= 150 and forms["choice"] >= 50 and forms["multiple_choice"] >= 50
    assert sum(case["category"] == "opposite_commitment" for case in cases) >= 25
    for case in cases:
        letters = "ABCDEFGHIJ"[:len(case["options"])]
        allowed = letters if case["form"] == "multiple_choice" else case["options"]
        assert case["expected"] is None or case["expected"] in allowed, case["id"]


def test_extraction_agrees_with_the_graders_and_never_credits_the_opposite():
    result, wrong = _benchmark().evaluate(_benchmark().load_cases())
    assert result["agreement"] >= 0.97, [(case["id"], got) for case, got in wrong]
    assert result["opposite_credit"] == 0
    assert all(share >= 0.9 for share in result["per_category"].values()), result["per_category"]
