"""Full fine-tuning: every parameter on the image path trains, with a head initialised from the zero-shot text
embeddings (or, with ``freeze_text: false``, class weights recomputed through a text tower that trains too).

"The image path" is found, not hard-coded: the parameters that receive a gradient from ``image_features`` on one
image. That covers the tower and any projection that lives outside it (transformers' ``visual_projection``), for
every adapter, and never the text tower or ``logit_scale``. Training runs on a deep copy of the model, so the
shared model stays bit-identical for the next cell.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medrival.core.errors import DataError, MedrivalError
from medrival.methods.base import TRAINS_ENCODER, METHODS, MethodSpec
from medrival.methods.training import (EncoderTrainingMethod, TrainingConfig, build_classifier, check_training_config,
                                       head_parameters, tensors_by_name, working_copy)


@dataclass
class FullFinetuneConfig(TrainingConfig):
    lr: float = field(default=1e-5, metadata={"help": "Peak AdamW learning rate of the encoder (small: every "
                                                      "weight moves)."})
    head_lr: float | None = field(default=1e-3, metadata={"help": "Learning rate of the classifier head; "
                                                                  "null: the same as lr."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay on matrices."})
    freeze_text: bool = field(
        default=True, metadata={"help": "Keep the text tower frozen (it only initialises the head); false trains "
                                        "it too, with class weights recomputed from the prompts every step."})

    def __post_init__(self) -> None:
        check_training_config("full_finetune", self)


def _path_parameter_names(adapter, forward) -> list[str]:
    """Names of the parameters of ``adapter.model`` that get a gradient from ``forward()`` (sum of outputs)."""
    flags = {name: p.requires_grad for name, p in adapter.model.named_parameters()}
    for parameter in adapter.model.parameters():
        parameter.requires_grad_(True)
        parameter.grad = None
    forward().float().sum().backward()
    names = [name for name, p in adapter.model.named_parameters() if p.grad is not None]
    for name, parameter in adapter.model.named_parameters():
        parameter.grad = None
        parameter.requires_grad_(flags[name])
    return names


def image_path_parameters(adapter, sample_pixels) -> list[str]:
    names = _path_parameter_names(adapter, lambda: adapter.image_features(sample_pixels, normalize=True))
    if not names:
        raise MedrivalError(f"no parameter of {type(adapter.model).__name__} gets a gradient from image_features; "
                            "the adapter must compute image features through its .model to be fine-tuned.")
    return names


def text_path_parameters(adapter, prompt: str) -> list[str]:
    return _path_parameter_names(adapter, lambda: adapter.text_features([prompt], normalize=True))


class FullFinetune(EncoderTrainingMethod):
    name = "full_finetune"

    def _build(self, adapter, class_init, prompts):
        adapter = working_copy(adapter)
        # Two blank images are enough to trace which parameters the image forward uses (two: BatchNorm).
        sample = adapter.preprocess(_blank_images(2))
        names = image_path_parameters(adapter, sample)
        if not self.config.freeze_text:
            names += [n for n in text_path_parameters(adapter, prompts[0][0]) if n not in names]
        self.trained_names = names
        network = build_classifier(adapter, class_init, None if self.config.freeze_text else prompts)
        parameters = dict(network.backbone.named_parameters())
        for name in names:
            parameters[name].requires_grad_(True)
        if self.config.freeze_text:
            for parameter in head_parameters(network):
                parameter.requires_grad_(True)
        if self.config.grad_checkpointing:
            adapter.set_grad_checkpointing(True)
        return network

    def _state_arrays(self) -> dict[str, Any]:
        """The trained parameters plus the buffers of the trained modules (e.g. BatchNorm statistics)."""
        prefixes = {name.rsplit(".", 1)[0] for name in self.trained_names if "." in name}
        buffers = [name for name, _ in self.network.backbone.named_buffers()
                   if name.rsplit(".", 1)[0] in prefixes]
        tensors = tensors_by_name(self.network.backbone, self.trained_names + buffers)
        return {f"encoder.{name}": tensor for name, tensor in tensors.items()}

    def _load_state_arrays(self, arrays: dict[str, Any]) -> None:
        import torch

        state = {name[len("encoder."):]: torch.from_numpy(value) for name, value in arrays.items()
                 if name.startswith("encoder.")}
        missing = [name for name in self.trained_names if name not in state]
        result = self.network.backbone.load_state_dict(state, strict=False)
        if missing or result.unexpected_keys:
            raise DataError(f"this full_finetune checkpoint does not fit the model (missing {missing[:3]}, "
                            f"unexpected {list(result.unexpected_keys)[:3]}); load it over the model it was "
                            "trained on.")


def _blank_images(count: int):
    """Grey 224 px images; the adapter's preprocessing resizes them to whatever the model expects."""
    import numpy as np

    return np.full((count, 224, 224, 3), 128, dtype=np.uint8)


METHODS.register("full_finetune", MethodSpec(
    name="full_finetune", config_class=FullFinetuneConfig, build=FullFinetune, families=("contrastive",),
    tasks=("binary", "multiclass"),
    summary="Fine-tune the whole image tower with a head initialised from the zero-shot text embeddings; best "
            "epoch chosen on validation.",
    capabilities=TRAINS_ENCODER))
