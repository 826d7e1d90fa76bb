"""VQA answer scoring: golden values for normalisation, choice extraction and every metric (hand-computed, and
checked against nltk / rouge-score called directly); NaN patterns and errors of the table functions."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from nltk.translate.bleu_score import sentence_bleu
from rouge_score import rouge_scorer

from medrival.core.errors import DataError
from medrival.metrics import vqa
from medrival.metrics.vqa import (
    OPEN_METRICS,
    VQA_METRICS,
    bleu1,
    exact_match,
    open_recall_at_0_75,
    rouge_l,
    score_answers,
    summarise,
    token_f1,
    token_recall,
)
from medrival.metrics.vqa_extract import extract_answer, extract_option, extract_yes_no, strip_reasoning
from medrival.metrics.vqa_text import NORMALISATION_VERSION, answer_tokens, normalise_answer

TOL = 1e-12

# ------------------------------------------------------------------------------------------------ normalisation


@pytest.mark.parametrize("raw, expected", [
    ("The Left Lung.", "left lung"),  # case, article, trailing full stop
    ("3.5 cm", "3.5 cm"),  # decimal point inside a number stays
    ("Size: 3.5cm.", "size 3.5cm"),  # ... but the sentence's full stop goes
    ("1,000 mg", "1,000 mg"),  # thousands separator stays
    ("3, 4", "3 4"),  # a comma followed by a space is punctuation
    ("left,right", "left right"),  # a comma between letters is punctuation
    (".5", "5"),  # no digit before the point
    ("x-ray (PA view)", "x ray pa view"),
    ("50%", "50"),
    ("It's", "it"),  # possessive / contraction 's removed
    ("Crohn's disease", "crohn disease"),
    ("Two kidneys", "2 kidneys"),  # number words are digits
    ("twenty-one lesions", "21 lesions"),
    ("one hundred", "100"),
    ("a single lesion", "single lesion"),  # "a single" is not a count
    ("first rib", "first rib"),  # ordinals stay words
    ("Oesophageal tumour", "esophageal tumor"),  # British -> American
    ("haemorrhage and oedema", "hemorrhage and edema"),
    ("paediatric anaemia", "pediatric anemia"),
    ("left/right", "left right"),  # slash spacing
    ("T2-weighted", "t2 weighted"),
    ("a, b, and c", "b and c"),  # "a" is an article wherever it stands
    ("An   opacity\n\tseen ", "opacity seen"),  # whitespace collapsed, ends stripped
    ("theory anterior", "theory anterior"),  # articles are whole words only
    ("ＹＥＳ！", "yes"),  # full-width letters and "!" via NFKC
    ("ﬁbrosis", "fibrosis"),  # ligature via NFKC
    ("Straße", "strasse"),  # casefold, not just lower
    ("café", "café"),  # accents are kept
    ("yes\u200b", "yes"),  # zero-width space (format character)
    ("", ""),
    ("?!", ""),
    (None, ""),
    (float("nan"), ""),
    (np.nan, ""),
    (pd.NA, ""),
    (2.0, "2"),  # an integral float read from a CSV
    (2.5, "2.5"),
    (7, "7"),
    (np.int64(12), "12"),
])
def test_normalise_answer(raw, expected):
    assert normalise_answer(raw) == expected


def test_normalise_answer_refuses_other_types():
    with pytest.raises(DataError, match=r"must be a string.*list"):
        normalise_answer(["yes"])


def test_answer_tokens_and_version():
    assert answer_tokens("The left, lower lobe!") == ["left", "lower", "lobe"]
    assert answer_tokens(None) == []
    assert NORMALISATION_VERSION == "2"


# ------------------------------------------------------------------------------------------------- extraction

ADENOMA = "Does the angiogram show parathyroid adenoma?"


@pytest.mark.parametrize("response, expected", [
    ("No.", "no"),
    ("Yes, there is an opacity", "yes"),
    ("YES.", "yes"),
    ("Answer: no", "no"),
    ("The answer is yes.", "yes"),
    ("The angiogram does not show parathyroid adenoma.", "no"),  # negated restatement
    ("There is no evidence of parathyroid adenoma.", "no"),
    ("Parathyroid adenoma is absent.", "no"),
    ("The angiogram shows a parathyroid adenoma.", "yes"),  # plain restatement
    ("Negative", "no"), ("Not present", "no"), ("Nope", "no"), ("Certainly not", "no"), ("Absent.", "no"),
    ("Yes/No", None), ("yes or no", None), ("Yes and no.", None),  # instruction echoes
    ("It is not possible to say yes", None), ("Cannot determine from this image.", None), ("No idea", None),
    ("It is not clear whether there is an adenoma.", None), ("Possibly.", None),  # hedges
    ("There is a small pleural effusion.", None),  # a different finding
    ("Looking at the film, no.", "no"),  # a bare answer
    ("<think>It could be yes, or no.</think> No.", "no"),  # reasoning stripped
    ("", None), (None, None), ("yesterday", None),
])
def test_extract_yes_no(response, expected):
    assert extract_yes_no(response, ADENOMA) == expected


def test_strip_reasoning_keeps_only_the_answer():
    assert strip_reasoning("<think>yes? no?</think>\nFinal answer: B") == "B"
    assert strip_reasoning("reasoning ... </think> yes") == "yes"  # a lone closing tag
    assert strip_reasoning("<think>never finished") == ""  # a truncated trace has no answer


@pytest.mark.parametrize("response, expected", [
    ("Supratentorial.", "supratentorial"),
    ("The lesion is infratentorial, in the posterior fossa.", "infratentorial"),
    ("It is not supratentorial but infratentorial", "infratentorial"),  # a negated mention does not count
    ("It could be either supratentorial or infratentorial", None),  # both
    ("Yes.", None),  # neither
])
def test_extract_choice_options(response, expected):
    assert extract_option(response, ("supratentorial", "infratentorial")) == expected


def test_extract_choice_counts_words_and_digits_alike():
    assert extract_option("There are two kidneys in this image.", ("1", "2")) == "2"
    assert extract_option("2", ("one", "two")) == "2"
    assert extract_option("one kidney", ("one", "two")) == "1"


def test_extract_choice_shared_head_matches_by_first_words():
    # "Is the mass in the left or right kidney?" parses to ("left", "right kidney")
    assert extract_option("right", ("left", "right kidney")) == "right kidney"
    assert extract_option("The mass is in the left kidney.", ("left", "right kidney")) == "left"


MC = ("Pneumonia", "Pneumothorax", "Pleural effusion", "Atelectasis")


@pytest.mark.parametrize("response, expected", [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("B) Pneumothorax", "B"), ("Answer: B", "B"), ("The answer is (C).", "C"),
    ("Option D", "D"), ("The correct option is C.", "C"), ("The correct answer is B: Pneumothorax", "B"),
    ("A. Pneumonia", "A"), ("A", "A"), ("b", "B"),
    ("A large pleural effusion is seen.", "C"),  # "A" as an article; the option text decides
    ("Pneumothorax", "B"),
    ("A or B", None), ("B, C", None), ("Both A and C are possible", None), ("E", None),  # E: no fifth option
    ("", None),
])
def test_extract_multiple_choice(response, expected):
    assert extract_option(response, MC, lettered=True) == expected


@pytest.mark.parametrize("options, message", [
    ((), r"has no option"),
    (("yes", "Yes."), r"duplicates after normalisation"),
])
def test_extract_bad_options(options, message):
    with pytest.raises(DataError, match=message):
        extract_option("yes", options)


def test_extract_answer_refuses_open_and_missing_options():
    with pytest.raises(DataError, match="not 'open'"):
        extract_answer("left", "open")
    with pytest.raises(DataError, match="needs its options"):
        extract_answer("left", "choice", None)


# --------------------------------------------------------------------------------------------- per-item metrics


def test_token_f1_and_recall_hand_computed():
    preds = ["left lower lobe", "left lung", "lung lung", "lung", "heart", "", "", "x", "the"]
    refs = ["the left lobe", "right lung", "lung", "lung lung", "liver", "", "x", "", "a"]
    # f1: 2*(2/3*1)/(2/3+1); 2*(1/2*1/2)/1; p=1/2 r=1 (multiset); p=1 r=1/2; no overlap; both empty (also after
    # normalisation: "the"/"a"); one empty.
    expected_f1 = [0.8, 0.5, 2 / 3, 2 / 3, 0.0, 1.0, 0.0, 0.0, 1.0]
    expected_recall = [1.0, 0.5, 1.0, 0.5, 0.0, 1.0, 0.0, 0.0, 1.0]
    f1, recall = token_f1(preds, refs), token_recall(preds, refs)
    assert f1.dtype == np.float64 and recall.dtype == np.float64
    np.testing.assert_allclose(f1, expected_f1, rtol=0, atol=TOL)
    np.testing.assert_allclose(recall, expected_recall, rtol=0, atol=TOL)


def test_exact_match():
    preds = ["The Left Lung.", "left lung", "3.5 cm", "YES", None]
    refs = ["left lung", "left lungs", "3,5 cm", "yes", ""]
    np.testing.assert_array_equal(exact_match(preds, refs), [1.0, 0.0, 0.0, 1.0, 1.0])


def test_bleu1_hand_computed():
    preds = ["left lung", "left lung lung", "lung left", "heart", "", "left", ""]
    refs = ["left upper lung lobe", "left lung", "left lung", "liver", "left lung", "", ""]
    expected = [
        math.exp(1 - 4 / 2),  # precision 2/2, prediction shorter: BP = exp(1 - r/c) with r=4, c=2
        2 / 3,  # clipped counts: left 1, lung min(2, 1) = 1, over 3 tokens; longer than reference: BP = 1
        1.0,  # unigrams ignore order
        0.0, 0.0, 0.0, 0.0,  # no overlap, empty prediction, empty reference, both empty
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = bleu1(preds, refs)
    assert caught == []  # nltk's zero-count warnings stay inside
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, expected, rtol=0, atol=TOL)


def test_bleu1_matches_nltk_called_directly():
    pairs = [("opacity in the left upper lobe", "left upper lobe opacity"),
             ("small right pleural effusion", "right pleural effusion"),
             ("MRI T2 weighted", "t2 weighted mri scan of brain"),
             ("3.5 cm nodule, 3.5 cm mass", "3.5 cm")]
    expected = [sentence_bleu([answer_tokens(r)], answer_tokens(p), weights=(1.0,)) for p, r in pairs]
    assert all(0 < value < 1 for value in expected)  # the pairs exercise both clipping and the brevity penalty
    np.testing.assert_allclose(bleu1(*zip(*pairs)), expected, rtol=0, atol=TOL)


def test_rouge_l_hand_lcs_and_rouge_score_called_directly():
    # normalised: prediction "opacity in left upper lobe" (5 tokens), reference "left lobe" (2); LCS "left lobe"
    # -> P = 2/5, R = 2/2, F = 2PR/(P+R) = 4/7.
    # prediction "left lower lung lobe" vs reference "lobe of left lung": LCS "left lung" -> P = R = F = 1/2.
    preds = ["opacity in the left upper lobe", "left lower lung lobe", "The Left Lung.", "", "heart"]
    refs = ["left lobe", "the lobe of left lung", "left lung", "left lung", "liver"]
    np.testing.assert_allclose(rouge_l(preds, refs), [4 / 7, 0.5, 1.0, 0.0, 0.0], rtol=0, atol=TOL)

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    direct = [scorer.score(target=normalise_answer(r), prediction=normalise_answer(p))["rougeL"].fmeasure
              for p, r in zip(preds, refs)]
    np.testing.assert_allclose(rouge_l(preds, refs), direct, rtol=0, atol=TOL)
    # the raw strings would give 0.8 for the third pair ("the" counted); we score normalised answers
    assert scorer.score(target="left lung", prediction="The Left Lung.")["rougeL"].fmeasure == pytest.approx(0.8)


def test_open_recall_at_0_75_threshold_edge():
    preds = ["left upper lung", "left lung", "left lung lobe with nodules", ""]
    refs = ["left upper lung lobe", "left lung lobe", "left lung lobe", "left"]
    np.testing.assert_allclose(token_recall(preds, refs), [0.75, 2 / 3, 1.0, 0.0], rtol=0, atol=TOL)
    np.testing.assert_array_equal(open_recall_at_0_75(preds, refs), [1.0, 0.0, 1.0, 0.0])
    # just below and exactly at the threshold with longer answers: 14/19 = 0.737 -> 0, 15/20 = 0.75 -> 1
    words = [f"w{i}" for i in range(20)]
    preds, refs = [" ".join(words[:14]), " ".join(words[:15])], [" ".join(words[:19]), " ".join(words)]
    np.testing.assert_array_equal(open_recall_at_0_75(preds, refs), [0.0, 1.0])


@pytest.mark.parametrize("metric", list(OPEN_METRICS.values()))
def test_every_metric_checks_pairing_and_refuses_bare_strings(metric):
    with pytest.raises(DataError, match=r"predictions has 1 items but references has 2"):
        metric(["yes"], ["yes", "no"])
    with pytest.raises(DataError, match=r"predictions must be a sequence of answers"):
        metric("yes", ["yes", "no", "yes"])
    assert metric([], []).shape == (0,)


def test_metrics_accept_series_and_arrays():
    preds = pd.Series(["left lung", "no"], index=[10, 20])
    refs = np.array(["the left lung", "no"])
    np.testing.assert_array_equal(exact_match(preds, refs), [1.0, 1.0])


def test_registry_names_and_populations():
    assert VQA_METRICS == {
        "closed_accuracy": ("yes_no", "choice", "multiple_choice"), "yes_no_accuracy": ("yes_no",),
        "choice_accuracy": ("choice",), "mc_accuracy": ("multiple_choice",),
        "undecided_rate": ("yes_no", "choice", "multiple_choice"), "open_exact_match": ("open",),
        "open_token_f1": ("open",), "open_token_recall": ("open",), "open_bleu1": ("open",),
        "open_rouge_l": ("open",), "open_recall_at_0_75": ("open",)}
    assert OPEN_METRICS["open_rouge_l"] is rouge_l


# ------------------------------------------------------------------------------------------------------- tables

PREDS = ["Yes, there is an opacity", "left lower lobe", "I cannot say yes or no", "The liver.", "left lung", "B"]
REFS = ["yes", "the left lobe", "no", "liver", "right lung", "Effusion"]
FORMS = ["yes_no", "open", "yes_no", "choice", "open", "multiple_choice"]
OPTIONS = [None, None, None, ("liver", "spleen"), None, ("Pneumonia", "Effusion", "Atelectasis")]


def test_score_answers_values_and_nan_pattern():
    table = score_answers(PREDS, REFS, FORMS, options=OPTIONS)
    assert list(table.columns) == ["form", "scored_as", "score_note", "extracted", "decided_by", *VQA_METRICS]
    assert list(table["scored_as"]) == FORMS
    closed, open_ = np.array(FORMS) != "open", np.array(FORMS) == "open"
    for name, population in VQA_METRICS.items():
        applies = np.isin(FORMS, population)
        assert table.loc[applies, name].notna().all() and table.loc[~applies, name].isna().all(), name
    np.testing.assert_array_equal(table.loc[closed, "closed_accuracy"], [1.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(table.loc[closed, "undecided_rate"], [0.0, 1.0, 0.0, 0.0])
    assert list(table["extracted"]) == ["yes", None, None, "liver", None, "B"]
    np.testing.assert_array_equal(table.loc[open_, "open_recall_at_0_75"], [1.0, 0.0])
    for name, metric in OPEN_METRICS.items():  # the table holds what the metric functions give on open items
        expected = metric([PREDS[i] for i in np.flatnonzero(open_)], [REFS[i] for i in np.flatnonzero(open_)])
        np.testing.assert_allclose(table.loc[open_, name], expected, rtol=0, atol=TOL)


def test_score_answers_accepts_an_option_frame_and_coarse_types():
    # option columns as a release stores them: a two-way question has no option_c
    frame = pd.DataFrame({"option_a": ["liver", "CT"], "option_b": ["spleen", "MRI"], "option_c": ["kidney", None]})
    table = score_answers(["Spleen.", "It is an MRI"], ["liver", "MRI"], ["closed", "closed"], options=frame)
    np.testing.assert_array_equal(table["closed_accuracy"], [0.0, 1.0])
    assert list(table["form"]) == ["choice", "choice"] and list(table["extracted"]) == ["spleen", "mri"]


def test_summarise_means_and_counts():
    summary = summarise(score_answers(PREDS, REFS, FORMS, options=OPTIONS))
    assert (summary["n_closed"], summary["n_open"], summary["n_yes_no"]) == (4, 2, 2)
    assert summary["closed_accuracy"] == pytest.approx(3 / 4, abs=TOL)
    assert summary["yes_no_accuracy"] == pytest.approx(1 / 2, abs=TOL)
    assert summary["mc_accuracy"] == 1.0 and summary["choice_accuracy"] == 1.0
    assert summary["undecided_rate"] == pytest.approx(1 / 4, abs=TOL)
    assert summary["open_token_f1"] == pytest.approx((0.8 + 0.5) / 2, abs=TOL)
    assert summary["open_token_recall"] == pytest.approx((1.0 + 0.5) / 2, abs=TOL)


def test_summarise_without_open_items_gives_nan_not_zero():
    summary = summarise(score_answers(["yes", "no"], ["yes", "yes"], ["yes_no", "yes_no"]))
    assert summary["closed_accuracy"] == 0.5 and summary["n_closed"] == 2 and summary["n_open"] == 0
    assert math.isnan(summary["open_recall_at_0_75"]) and math.isnan(summary["mc_accuracy"])
    with pytest.raises(DataError, match=r"lacks the column\(s\) scored_as"):
        summarise(pd.DataFrame({name: [1.0] for name in VQA_METRICS}))


def test_empty_answer_is_wrong_never_a_crash():
    table = score_answers(["", None, float("nan")], ["yes", "B", "left"], ["yes_no", "multiple_choice", "open"],
                          options=[None, ("x", "y"), None])
    assert table["closed_accuracy"].tolist()[:2] == [0.0, 0.0] and table["undecided_rate"].tolist()[:2] == [1.0, 1.0]
    assert table["open_token_f1"].tolist()[2] == 0.0


def test_score_answers_errors():
    with pytest.raises(DataError, match=r"got 'Open', 'yes', None \(3 items, the first at position 1\)"):
        score_answers(["a"] * 5, ["yes"] * 5, ["closed", "Open", None, "open", "yes"])
    with pytest.raises(DataError, match=r"forms has 1"):
        score_answers(["yes", "no"], ["yes", "no"], ["closed"])
    with pytest.raises(DataError, match=r"predictions has 2 items but references has 1"):
        score_answers(["yes", "no"], ["yes"], ["closed", "closed"])
    with pytest.raises(DataError, match=r"must be one column of answers, got a DataFrame"):
        score_answers(pd.DataFrame({"answer": ["yes"]}), ["yes"], ["closed"])
    with pytest.raises(DataError, match=r"have no options"):
        score_answers(["B"], ["B"], ["multiple_choice"])


def test_multiple_choice_gold_outside_its_options_names_the_item_and_release():
    with pytest.raises(DataError, match=r"item 'q7' of pmc-vqa: the reference 'E' is neither a letter of its 3 "
                                        r"options \(A, B, C\)"):
        score_answers(["A", "E"], ["A", "E"], ["multiple_choice"] * 2, options=[("x", "y", "z")] * 2,
                      item_ids=["q6", "q7"], source="pmc-vqa")


def test_fallback_decides_only_undecided_items():
    table = score_answers(["Yes.", "hmm, hard to say"], ["no", "no"], ["yes_no", "yes_no"], fallback=["yes", "no"])
    assert list(table["extracted"]) == ["yes", "no"] and list(table["decided_by"]) == ["rules", "extractor"]
    np.testing.assert_array_equal(table["closed_accuracy"], [0.0, 1.0])
    assert table["undecided_rate"].tolist() == [0.0, 0.0]


def test_rouge_scorer_is_built_once():
    rouge_l(["left"], ["left"])
    assert vqa._rouge_l_scorer() is vqa._rouge_l_scorer()
