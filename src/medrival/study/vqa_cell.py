"""Running one VQA cell: fit the method on train/val questions, answer the test questions, score every answer.

Per-question rows are stored (question, form, options, reference, raw response, extracted answer, who decided it,
and every per-item metric), so every aggregate and CI is computed from them. Scoring is
``medrival.metrics.vqa.score_answers`` -- the same function a user calls -- on each question's form and options.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd

from medrival.core.types import CellSpec, VQASplit
from medrival.metrics.vqa import VQA_VERSIONS, score_answers, summarise
from medrival.metrics.vqa_text import normalise_answer
from medrival.methods.generation_cache import usage_from, usage_since
from medrival.methods.vqa_answers import VQAOutput


def _options_text(options) -> str | None:
    return json.dumps(list(options), ensure_ascii=False) if options else None


def score_vqa(split: VQASplit, output: VQAOutput, fallback=None) -> pd.DataFrame:
    """Per-question table: ids, texts, form and options, ``prob_yes``/``label_yes`` where scored, and every
    per-item metric. ``fallback``: an answer extractor's decisions, used where the rules are undecided."""
    scores = score_answers(output.responses, split.answers, split.forms, split.options, questions=split.questions,
                           fallback=fallback, item_ids=split.ids.astype(str).tolist(), source=split.info.name)
    frame = pd.DataFrame({
        "sample_id": split.ids.astype(str),
        "cluster_id": np.asarray(split.image_ids)[np.asarray(split.image_index, dtype=np.int64)].astype(str),
        "answer_type": split.closed_or_open(), "form": list(split.forms),
        "options": [_options_text(options) for options in split.options],
        "question": list(split.questions), "answer": list(split.answers), "response": list(output.responses)})
    yes_no = scores["scored_as"].to_numpy() == "yes_no"
    references = np.asarray([normalise_answer(answer) for answer in split.answers], dtype=object)
    frame["prob_yes"] = np.where(yes_no, output.yes_probability, np.nan)
    frame["label_yes"] = np.where(yes_no, (references == "yes").astype(float), np.nan)
    failure = np.full(len(split), None, dtype=object)
    for row, message in output.failures:
        failure[row] = message
    frame["failure"] = failure
    return pd.concat([frame, scores.drop(columns=["form"])], axis=1)


def vqa_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """Cell-level means (each metric over the questions it applies to) and the yes/no AUROC (``yes_no_auroc``)."""
    metrics = summarise(frame)
    scored = frame["prob_yes"].notna() & frame["label_yes"].notna()
    labels = frame.loc[scored, "label_yes"].to_numpy()
    if scored.any() and 0 < labels.sum() < len(labels):
        from sklearn.metrics import roc_auc_score

        metrics["yes_no_auroc"] = float(roc_auc_score(labels, frame.loc[scored, "prob_yes"].to_numpy()))
    return metrics


def prompt_set_vqa_metrics(split: VQASplit, set_outputs: dict[str, VQAOutput]) -> dict[str, dict[str, float]]:
    """Each prompt set's test metrics (rules only: no extractor, no judge), from the answers a method with
    ``prompt_sensitivity`` returns: a spread for the report, never used to choose."""
    return {name: vqa_metrics(score_vqa(split, output)) for name, output in set_outputs.items()}


def fit_and_answer(cell: CellSpec, context, method) -> tuple[VQAOutput, VQASplit, dict]:
    """Fit ``method`` on the cell's train/val questions and answer the test questions."""
    model = context.model_for(cell)
    train, val, test = (context.split(cell.dataset, s) for s in ("train", "val", "test"))
    generations = usage_from(context.features)
    started = time.perf_counter()
    method.fit(model, train, val, context.features, seed=cell.seed)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    output = method.predict(test)
    facts = {"fit_s": fit_s, "predict_s": time.perf_counter() - started, "n_train": len(train), "n_val": len(val),
             "n_test": len(test), "device": str(model.device),
             **{f"{rule}_version": version for rule, version in VQA_VERSIONS.items()},
             "failed_questions": len(output.failures),
             "generation_cache": usage_since(context.features, generations)}  # answers reused / generated
    return output, test, facts


def judge_open_answers(frame: pd.DataFrame, judge: dict) -> tuple[pd.DataFrame, dict[str, float], str]:
    """The open questions' answers graded by the study's LLM judge: per-question ``judge_mean`` / ``judge_sd`` /
    ``judge_failures`` columns (NaN on closed questions), the cell-level summary and the judge prompt version."""
    from medrival.metrics.llm_judge import judge_open_answers as judge_answers, summarise_judgments

    open_rows = np.flatnonzero(frame["scored_as"].to_numpy() == "open")
    judged = judge_answers(frame["question"].iloc[open_rows], frame["answer"].iloc[open_rows],
                           frame["response"].iloc[open_rows], **judge)
    frame = frame.copy()
    for column in ("judge_mean", "judge_sd", "judge_failures"):
        values = np.full(len(frame), np.nan)
        values[open_rows] = judged[column].to_numpy(dtype=float)
        frame[column] = values
    summary = summarise_judgments(judged)
    return frame, {"llm_judge": summary["judge_mean"], "llm_judge_sd_mean": summary["judge_sd_mean"],
                   "llm_judge_failures": float(summary["judge_failures"])}, summary["judge_prompt_version"]


EXTRACTOR_COLUMNS = ("extractor_decision", "extractor_model", "extractor_prompt_version")


def extract_undecided_answers(split: VQASplit, output: VQAOutput, frame: pd.DataFrame,
                              extractor: dict) -> tuple[pd.DataFrame, dict]:
    """The closed answers the rules left undecided (and that say something) sent to the study's answer extractor,
    then every answer scored again with its decisions as ``fallback`` (used only where the rules are undecided).

    Returns the rescored frame with ``extractor_decision`` (the raw reply), ``extractor_model`` and
    ``extractor_prompt_version`` columns (None on items not sent), and the cost facts ``extractor_prompt_version``,
    ``extractor_items`` (sent) and ``extractor_failures`` (no reply after the retries, or not sent because the
    endpoint was down) with up to five of their messages."""
    from medrival.core.errors import ConfigError
    from medrival.core.vqa_forms import CLOSED_FORMS
    from medrival.metrics.answer_extractor import EXTRACTOR_PROMPT_VERSION, extract_undecided

    settings = dict(extractor)
    version = settings.pop("prompt_version", EXTRACTOR_PROMPT_VERSION)
    if version != EXTRACTOR_PROMPT_VERSION:  # a cell planned with another prompt: never answer it with this one
        raise ConfigError(f"the cell asks for answer-extractor prompt {version!r}; this medrival has "
                          f"{EXTRACTOR_PROMPT_VERSION!r}.")
    said = np.array([isinstance(response, str) and bool(response.strip()) for response in output.responses],
                    dtype=bool)
    rows = np.flatnonzero(frame["scored_as"].isin(CLOSED_FORMS).to_numpy() & frame["extracted"].isna().to_numpy()
                          & said)
    facts = {"extractor_prompt_version": EXTRACTOR_PROMPT_VERSION, "extractor_items": int(len(rows)),
             "extractor_failures": 0}
    columns = {column: np.full(len(split), None, dtype=object) for column in EXTRACTOR_COLUMNS}
    if not len(rows):  # nothing undecided: no request, the rules decided every closed answer
        return frame.assign(**columns), facts
    decided = extract_undecided([split.questions[i] for i in rows], frame["scored_as"].iloc[rows].tolist(),
                                [split.options[i] for i in rows], [output.responses[i] for i in rows], **settings)
    fallback = np.full(len(split), None, dtype=object)
    fallback[rows] = decided["extractor_answer"].to_numpy(dtype=object)
    frame = score_vqa(split, output, fallback=fallback.tolist())
    columns["extractor_decision"][rows] = decided["extractor_decision"].to_numpy(dtype=object)
    columns["extractor_model"][rows] = decided.attrs["extractor_model"]
    columns["extractor_prompt_version"][rows] = EXTRACTOR_PROMPT_VERSION
    failures = decided.attrs["extractor_failure_messages"]
    facts["extractor_failures"] = len(failures)
    if failures:
        # The first five failures as examples, each whole (a cut message loses its cause or fix).
        facts["extractor_failure_messages"] = [f"{split.ids[rows[row]]}: {message}" for row, message in failures[:5]]
    return frame.assign(**columns), facts
