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
    NORMALISATION_VERSION,
    VQA_METRICS,
    answer_tokens,
    bleu1,
    closed_accuracy,
    exact_match,
    extract_choice,
    normalise_answer,
    open_recall_at_0_75,
    rouge_l,
    score_answers,
    summarise,
    token_f1,
    token_recall,
)

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
    ("It's", "it s"),
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
    assert NORMALISATION_VERSION == "1"


# -------------------------------------------------------------------------------------------- choice extraction


@pytest.mark.parametrize("response, expected", [
    ("The image looks normal", None),  # negation words are not options
    ("No.", "no"),
    ("Yes, there is an opacity", "yes"),
    ("There is no effusion", "no"),  # "no" occurs once, as a whole word (rule 2)
    ("no, yes", "no"),  # rule 1: the response starts with "no"
    ("not sure", None),
    ("yesterday", None),  # whole words only
    ("I cannot say yes or no", None),  # both occur, neither at the start
    ("YES.", "yes"),
    ("Answer: no", "no"),
    ("No idea", "no"),  # rule 1 takes a leading option at face value (documented)
    ("", None),
    (None, None),
])
def test_extract_choice_yes_no(response, expected):
    assert extract_choice(response) == expected


CLASSES = ("pleural effusion", "effusion", "pneumothorax")


@pytest.mark.parametrize("response, expected", [
    ("Pleural effusion.", "pleural effusion"),  # rule 1, longest option first
    ("Effusion.", "effusion"),
    ("There is a pleural effusion", "pleural effusion"),  # rule 2: "effusion" inside the longer option
    ("The effusion is pleural", "effusion"),
    ("pneumothorax and pleural effusion", "pneumothorax"),  # rule 1
    ("signs of pneumothorax and pleural effusion", None),  # two different options
    ("pleural", None),
])
def test_extract_choice_multiword_options(response, expected):
    assert extract_choice(response, CLASSES) == expected
    assert extract_choice(response, CLASSES[::-1]) == expected  # option order does not matter


def test_extract_choice_returns_normalised_option_and_skips_missing_options():
    assert extract_choice("pleural effusion", ("Pleural Effusion", "Pneumothorax")) == "pleural effusion"
    assert extract_choice("Liver", ("liver", "spleen", None, float("nan"))) == "liver"


@pytest.mark.parametrize("options, message", [
    ((), r"\(\) has no option"),
    ((None, float("nan")), r"has no option"),
    (("yes", "Yes."), r"'yes' and 'Yes\.' both normalise to 'yes'"),
    (("A", "B"), r"option\(s\) 'A' of \('A', 'B'\) normalise to an empty string.*articles"),
    ("yes", r"options must be a sequence.*got str 'yes'"),
])
def test_extract_choice_bad_options(options, message):
    with pytest.raises(DataError, match=message):
        extract_choice("yes", options)


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


def test_closed_accuracy_yes_no():
    preds = ["Yes.", "No, there is none", "maybe", "either yes or no", "yes or no", "YES", "yesterday"]
    refs = ["yes", "no", "no", "yes", "yes", "No", "yes"]
    # "yes or no" starts with "yes" (rule 1); "either yes or no" commits to neither
    np.testing.assert_array_equal(closed_accuracy(preds, refs), [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0])


def test_closed_accuracy_shared_and_per_item_options():
    organs = ("liver", "spleen", "left kidney")
    np.testing.assert_array_equal(
        closed_accuracy(["The liver.", "It is the left kidney", "kidney"], ["Liver", "left kidney", "left kidney"],
                        options=organs),
        [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(
        closed_accuracy(["It is a CT scan", "no", "MRI"], ["ct", "no", "ct"],
                        options=[("CT", "MRI"), None, ("CT", "MRI")]),
        [1.0, 1.0, 0.0])


def test_closed_accuracy_errors():
    with pytest.raises(DataError, match=r"reference 'CT' \(normalised 'ct'\) at position 1 is not among its options "
                                        r"\('yes', 'no'\); 1 of 2 closed items"):
        closed_accuracy(["yes", "ct"], ["yes", "CT"])
    with pytest.raises(DataError, match=r"predictions has 3 items but references has 2"):
        closed_accuracy(["yes", "no", "yes"], ["yes", "no"])
    with pytest.raises(DataError, match=r"options has 3 per-item entries but there are 2 items"):
        closed_accuracy(["yes", "no"], ["yes", "no"], options=[None, None, None])
    with pytest.raises(DataError, match=r"options\[1\] is 3"):
        closed_accuracy(["yes", "no"], ["yes", "no"], options=[None, 3])


@pytest.mark.parametrize("metric", [fn for fn, _ in VQA_METRICS.values()])
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


def test_registry_names_and_scopes():
    assert {name: scope for name, (_, scope) in VQA_METRICS.items()} == {
        "closed_accuracy": "closed", "open_recall_at_0_75": "open", "exact_match": "all", "token_f1": "all",
        "token_recall": "all", "bleu1": "all", "rouge_l": "all"}
    assert VQA_METRICS["rouge_l"][0] is rouge_l


# ------------------------------------------------------------------------------------------------------- tables

PREDS = ["Yes, there is an opacity", "left lower lobe", "I cannot say yes or no", "The liver.", "left lung"]
REFS = ["yes", "the left lobe", "no", "liver", "right lung"]
TYPES = ["closed", "open", "closed", "closed", "open"]
OPTIONS = [None, None, None, ("liver", "spleen"), None]


def test_score_answers_values_and_nan_pattern():
    table = score_answers(PREDS, REFS, TYPES, options=OPTIONS)
    assert list(table.columns) == ["answer_type", *VQA_METRICS, "extracted"]
    assert list(table["answer_type"]) == TYPES
    closed, open_ = np.array(TYPES) == "closed", np.array(TYPES) == "open"
    assert table.loc[open_, "closed_accuracy"].isna().all() and table.loc[closed, "closed_accuracy"].notna().all()
    assert table.loc[closed, "open_recall_at_0_75"].isna().all()
    assert table.loc[open_, "open_recall_at_0_75"].notna().all()
    for name in ("exact_match", "token_f1", "token_recall", "bleu1", "rouge_l"):
        assert table[name].notna().all(), name
    np.testing.assert_array_equal(table["closed_accuracy"], [1.0, np.nan, 0.0, 1.0, np.nan])
    np.testing.assert_array_equal(table["open_recall_at_0_75"], [np.nan, 1.0, np.nan, np.nan, 0.0])
    np.testing.assert_array_equal(table["exact_match"], [0.0, 0.0, 0.0, 1.0, 0.0])
    # item 0: pred tokens "yes there is opacity" (4) vs "yes": p = 1/4, r = 1, F1 = 0.4; item 2 shares "no" of 6
    np.testing.assert_allclose(table["token_f1"], [0.4, 0.8, 2 / 7, 1.0, 0.5], rtol=0, atol=TOL)
    np.testing.assert_allclose(table["token_recall"], [1.0, 1.0, 1.0, 1.0, 0.5], rtol=0, atol=TOL)
    assert list(table["extracted"]) == ["yes", None, None, "liver", None]
    for name, (metric, _) in VQA_METRICS.items():  # the table holds what the metric functions give
        if name not in ("closed_accuracy", "open_recall_at_0_75"):
            np.testing.assert_allclose(table[name], metric(PREDS, REFS), rtol=0, atol=TOL)


def test_score_answers_accepts_an_option_frame():
    # option columns as a release stores them: a two-way question has no option_c
    frame = pd.DataFrame({"option_a": ["liver", "CT"], "option_b": ["spleen", "MRI"], "option_c": ["kidney", None]})
    table = score_answers(["Spleen.", "It is an MRI"], ["liver", "MRI"], ["closed", "closed"], options=frame)
    np.testing.assert_array_equal(table["closed_accuracy"], [0.0, 1.0])
    assert list(table["extracted"]) == ["spleen", "mri"]


def test_summarise_means_and_counts():
    summary = summarise(score_answers(PREDS, REFS, TYPES, options=OPTIONS))
    assert summary["n_closed"] == 3 and summary["n_open"] == 2
    assert summary["closed_accuracy"] == pytest.approx(2 / 3, abs=TOL)
    assert summary["open_recall_at_0_75"] == pytest.approx(0.5, abs=TOL)
    assert summary["exact_match"] == pytest.approx(0.2, abs=TOL)
    assert summary["token_f1"] == pytest.approx((0.4 + 0.8 + 2 / 7 + 1.0 + 0.5) / 5, abs=TOL)
    assert summary["token_recall"] == pytest.approx(4.5 / 5, abs=TOL)
    assert set(summary) == {*VQA_METRICS, "n_closed", "n_open"}


def test_summarise_without_open_items_gives_nan_not_zero():
    summary = summarise(score_answers(["yes", "no"], ["yes", "yes"], ["closed", "closed"]))
    assert summary["closed_accuracy"] == 0.5 and summary["n_closed"] == 2 and summary["n_open"] == 0
    assert math.isnan(summary["open_recall_at_0_75"])
    with pytest.raises(DataError, match=r"lacks the column\(s\) answer_type"):
        summarise(pd.DataFrame({name: [1.0] for name in VQA_METRICS}))


def test_score_answers_errors():
    with pytest.raises(DataError, match=r"got 'Open', 'yes', None \(3 items, the first at position 1\)"):
        score_answers(["a"] * 5, ["yes"] * 5, ["closed", "Open", None, "open", "yes"])
    with pytest.raises(DataError, match=r"predictions has 2 items, references 2 and answer_types 1"):
        score_answers(["yes", "no"], ["yes", "no"], ["closed"])
    with pytest.raises(DataError, match=r"predictions has 2 items but references has 1"):
        score_answers(["yes", "no"], ["yes"], ["closed", "closed"])
    # positions in errors are rows of the whole table, not of the closed subset
    with pytest.raises(DataError, match=r"reference 'CT' \(normalised 'ct'\) at position 2"):
        score_answers(["x", "yes", "ct"], ["left lung", "yes", "CT"], ["open", "closed", "closed"])
    with pytest.raises(DataError, match=r"must be one column of answers, got a DataFrame"):
        score_answers(pd.DataFrame({"answer": ["yes"]}), ["yes"], ["closed"])


def test_rouge_scorer_is_built_once():
    rouge_l(["left"], ["left"])
    assert vqa._rouge_l_scorer() is vqa._rouge_l_scorer()
