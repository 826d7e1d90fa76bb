"""Fault injection, configuration side: out-of-range seeds, LoRA ranks, shots and kNN k are refused before
anything runs (all problems listed at once), or at fit naming both numbers."""
from __future__ import annotations

import numpy as np
import pytest

from medrival.core.errors import ConfigError, DataError, MedrivalError
from medrival.methods.knn import Knn, KnnConfig
from medrival.methods.lora import LoraConfig, check_rank_fits
from medrival.methods.vqa_lora import VQALoraConfig
from medrival.study.spec import parse_study

BAD_STUDY = """
models: [demo-specialist-clip]
datasets: [pneumonia-world]
seeds: [0, 4294967296]
methods:
  - {name: lora, config: {rank: 100000000}}
  - {name: knn, config: {ks: [1000000000]}}
fewshot: {shots: [1000000000000]}
"""


def test_a_study_with_out_of_range_values_is_refused_listing_every_problem():
    with pytest.raises(MedrivalError) as caught:
        parse_study(BAD_STUDY, "study.yaml")
    message = str(caught.value)
    for fragment in ("seeds", "4294967295", "rank", "4096", "ks", "10000", "shots", "100000"):
        assert fragment in message, (fragment, message)


def test_seed_bounds():
    parse_study(BAD_STUDY.split("methods:")[0].replace("4294967296", "4294967295") + "methods: [zero_shot]\n",
                "study.yaml")


def test_rank_bounds_and_width():
    with pytest.raises(ConfigError, match="1..4096"):
        LoraConfig(rank=10**8)
    with pytest.raises(ConfigError, match="1..4096"):
        VQALoraConfig(rank=10**8)
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(16, 32))
    check_rank_fits(model, ["0"], 16)
    with pytest.raises(ConfigError, match=r"rank 17 exceeds the width 16 of the adapted layer '0'"):
        check_rank_fits(model, ["0"], 17)


def test_vqa_lora_rank_wider_than_the_model_is_refused_before_training():
    from medrival.data.catalog import load_dataset
    from medrival.methods.vqa_lora import VQALora
    from medrival.models.factory import create_model

    model = create_model("demo-generalist-vlm")
    split = load_dataset("demo-xray-vqa", "train", n=4, size=32)
    method = VQALora(VQALoraConfig(rank=4000, epochs=1, train_batch_size=4, batch_size=4))
    with pytest.raises(ConfigError, match=r"vqa_lora rank 4000 exceeds the width \d+ of the adapted layer"):
        method.fit(model, split, split, None, seed=0)
    assert not any("lora_" in name for name, _ in model.model.named_parameters())  # the shared model untouched


def test_knn_k_bounds_and_fit_check():
    with pytest.raises(ConfigError, match="at most 10000"):
        KnnConfig(ks=(10**9,))

    class Features:
        def image_features(self, model, split):
            return np.eye(3, dtype=np.float32)

    class Info:
        name, num_classes, task = "toy", 2, None

    class Split:
        info, split, labels = Info, "train", np.array([0, 1, 0])

    with pytest.raises(DataError, match=r"exceeds the 3 training examples"):
        Knn(KnnConfig(ks=(5, 7))).fit(None, Split, Split, Features())


def test_shots_above_a_class_count_are_recorded():
    from medrival.core.types import ClassificationSplit, DatasetInfo, TaskKind
    from medrival.data.fewshot import shots_warnings

    info = DatasetInfo(name="toy", task=TaskKind.BINARY, modality="xray", class_names=("a", "b"),
                       licence="none")
    split = ClassificationSplit(info, "train", np.zeros((3, 2, 2, 3), np.uint8), np.array([0, 0, 1]),
                                np.array(["x", "y", "z"]))
    assert shots_warnings(split, 1) == []
    assert "shots=5 exceeds the 1 train example(s) of class 'b'" in shots_warnings(split, 5)[0]
