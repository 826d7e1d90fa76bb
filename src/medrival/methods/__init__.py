"""Adaptation methods. Importing this package registers every built-in method in ``METHODS``."""
from medrival.methods.base import METHODS, MethodSpec, Predictions
from medrival.methods import linear_probe, zero_shot  # noqa: F401  (registration side effects)
from medrival.methods import clip_adapter, coop, knn, tip_adapter  # noqa: F401  (feature-space ladder)
from medrival.methods import full_finetune, lora  # noqa: F401  (encoder training: LoRA, full fine-tuning)
from medrival.methods import option_zero_shot, vqa_lora, vqa_zero_shot  # noqa: F401  (generative track)

__all__ = ["METHODS", "MethodSpec", "Predictions"]
