"""Agreement of medrival's answer extraction with careful human verdicts on the written extraction test set.

``tests/data/vqa_extraction_cases.jsonl`` holds responses in the style of real medical VLM output (long
explanations, hedges, negations, instruction echoes, counts in words, letters with and without brackets...), each
with the answer a careful grader extracts (or null: undecided). This script extracts every response with
``medrival.metrics.vqa_extract.extract_answer`` and prints, as the last line, a JSON object with ``agreement``
(share of cases where the extraction equals the grader's verdict), ``undecided_rate`` (share the rules leave
undecided), ``opposite_credit`` (cases credited although the response commits to the opposite of the gold: must
be 0), per-category and per-form agreement, and ``n``. ``--show`` lists the disagreements.

Target (issue 13): agreement >= 0.97 and opposite_credit == 0.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from medrival.core.vqa_forms import LETTERS
from medrival.metrics.vqa_extract import extract_answer
from medrival.metrics.vqa_text import normalise_answer

CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "vqa_extraction_cases.jsonl"


def load_cases(path: Path = CASES) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def expected_key(case: dict) -> str | None:
    """The grader's verdict in the extractor's terms: a letter for multiple choice, a normalised option otherwise."""
    value = case["expected"]
    if value is None or case["form"] == "multiple_choice":
        return value
    return normalise_answer(value)


def gold_key(case: dict) -> str:
    return case["gold"] if case["form"] == "multiple_choice" else normalise_answer(case["gold"])


def evaluate(cases: list[dict]) -> tuple[dict, list[tuple[dict, str | None]]]:
    per_category: dict[str, list[bool]] = defaultdict(list)
    per_form: dict[str, list[bool]] = defaultdict(list)
    wrong, undecided, opposite_credit = [], 0, 0
    for case in cases:
        got = extract_answer(case["response"], case["form"], case["options"], case["question"])
        agree = got == expected_key(case)
        per_category[case["category"]].append(agree)
        per_form[case["form"]].append(agree)
        undecided += got is None
        if case["category"] == "opposite_commitment" and got == gold_key(case):
            opposite_credit += 1
        if not agree:
            wrong.append((case, got))
    share = lambda values: round(sum(values) / len(values), 4)  # noqa: E731
    result = {"n": len(cases), "agreement": share([a for v in per_form.values() for a in v]),
              "undecided_rate": round(undecided / len(cases), 4), "opposite_credit": opposite_credit,
              "per_form": {k: share(v) for k, v in sorted(per_form.items())},
              "per_category": {k: share(v) for k, v in sorted(per_category.items())}}
    return result, wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="list the cases where extraction and grader differ")
    args = parser.parse_args(argv)
    result, wrong = evaluate(load_cases())
    if args.show:
        for case, got in wrong:
            print(f"{case['id']} [{case['form']}/{case['category']}] expected={case['expected']!r} got={got!r}\n"
                  f"   Q: {case['question']}\n   R: {case['response']!r}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
