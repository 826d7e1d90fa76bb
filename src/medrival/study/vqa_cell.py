"""Running one VQA cell: fit the method on train/val questions, answer the test questions, score every answer.

Per-question rows are stored (question, reference, raw response, extracted answer and every per-item metric), so
every aggregate and CI is computed from them. Closed questions whose reference is yes or no are scored by the
versioned extraction rule of ``medrival.metrics.vqa``; a closed question with another reference ("left or
right?") has no declared option set, so its closed accuracy is the strict exact match of the normalised answer.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from medrival.core.types import CellSpec, VQASplit
from medrival.metrics.vqa import NORMALISATION_VERSION, YES_NO, normalise_answer, score_answers, summarise
from medrival.methods.vqa_answers import VQAOutput
from medrival.core.prompts import PROMPT_VERSION


def score_vqa(split: VQASplit, output: VQAOutput) -> pd.DataFrame:
    """Per-question table: ids, texts, ``prob_yes``/``label_yes`` where scored, and every per-item metric."""
    declared = np.asarray(split.answer_types, dtype=object)
    references = np.asarray([normalise_answer(answer) for answer in split.answers], dtype=object)
    # Closed questions whose reference is not yes/no are scored as open (see the module docstring).
    yes_no = (declared == "closed") & np.isin(references, YES_NO)
    other_closed = (declared == "closed") & ~yes_no
    scores = score_answers(output.responses, split.answers, np.where(yes_no, "closed", "open").tolist())
    scores.loc[other_closed, "closed_accuracy"] = scores.loc[other_closed, "exact_match"]
    scores.loc[other_closed, "open_recall_at_0_75"] = np.nan  # an open-only metric; these are closed questions
    scores.loc[other_closed, "extracted"] = [normalise_answer(output.responses[i])
                                             for i in np.flatnonzero(other_closed)]
    frame = pd.DataFrame({
        "sample_id": split.ids.astype(str),
        "cluster_id": np.asarray(split.image_ids)[np.asarray(split.image_index, dtype=np.int64)].astype(str),
        "answer_type": declared, "question": list(split.questions), "answer": list(split.answers),
        "response": list(output.responses)})
    frame["extracted"] = scores["extracted"].to_numpy(dtype=object)
    frame["prob_yes"] = np.where(yes_no, output.yes_probability, np.nan)
    frame["label_yes"] = np.where(yes_no, (references == "yes").astype(float), np.nan)
    failure = np.full(len(split), None, dtype=object)
    for row, message in output.failures:
        failure[row] = message
    frame["failure"] = failure
    metric_columns = [c for c in scores.columns if c not in ("answer_type", "extracted")]
    return pd.concat([frame, scores[metric_columns]], axis=1)


def vqa_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """Cell-level means (each metric over the questions it applies to) and the closed yes/no AUROC."""
    metrics = summarise(frame)
    scored = frame["prob_yes"].notna() & frame["label_yes"].notna()
    labels = frame.loc[scored, "label_yes"].to_numpy()
    if scored.any() and 0 < labels.sum() < len(labels):
        from sklearn.metrics import roc_auc_score

        metrics["closed_auroc"] = float(roc_auc_score(labels, frame.loc[scored, "prob_yes"].to_numpy()))
    return metrics


def fit_and_answer(cell: CellSpec, context, method) -> tuple[VQAOutput, VQASplit, dict]:
    """Fit ``method`` on the cell's train/val questions and answer the test questions."""
    model = context.model(cell.model, cell.weights)
    train, val, test = (context.split(cell.dataset, s) for s in ("train", "val", "test"))
    started = time.perf_counter()
    method.fit(model, train, val, context.features, seed=cell.seed)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    output = method.predict(test)
    facts = {"fit_s": fit_s, "predict_s": time.perf_counter() - started, "n_train": len(train), "n_val": len(val),
             "n_test": len(test), "device": str(model.device), "prompt_version": PROMPT_VERSION,
             "normalisation_version": NORMALISATION_VERSION, "failed_questions": len(output.failures)}
    return output, test, facts


def judge_open_answers(frame: pd.DataFrame, judge: dict) -> tuple[pd.DataFrame, dict[str, float], str]:
    """The open questions' answers graded by the study's LLM judge: per-question ``judge_mean`` / ``judge_sd`` /
    ``judge_failures`` columns (NaN on closed questions), the cell-level summary and the judge prompt version."""
    from medrival.metrics.llm_judge import judge_open_answers as judge_answers, summarise_judgments

    open_rows = np.flatnonzero(frame["answer_type"].to_numpy() == "open")
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
