"""LoRA supervised fine-tuning (peft) of a generative model on a VQA dataset's training questions.

Variants (``variant``): ``llm`` puts adapters on the language model's attention and MLP projections (the usual
LLaVA recipe), ``projector`` on the multimodal projector's linear layers only, ``vision_llm`` on the vision tower
and the language model. The loss covers answer tokens only; the checkpoint (epoch) is chosen on validation loss.

Adapters are injected into the shared model in place and removed again by ``close`` (peft's ``unload``): the base
weights are frozen, so the model the next cell gets is the base model, without holding a second copy of a 7B
model in memory. QLoRA (``quantization: 4bit``) reloads the base in 4-bit NF4 through bitsandbytes, on CUDA only.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from medrival.core.errors import ConfigError, MedrivalError
from medrival.methods.base import TRAINS_ENCODER, METHODS, MethodSpec
from medrival.methods.checkpoint import load_checkpoint, save_checkpoint
from medrival.methods.lora import MAX_LORA_RANK, check_rank_fits
from medrival.methods.training import PRECISIONS, check_precision, seeded
from medrival.methods.vqa_answers import VQAGenerationConfig, VQAOutput, answer_questions
from medrival.methods.vqa_sft import SFTSettings, train_sft

VARIANTS = {"llm": ("llm",), "projector": ("projector",), "vision_llm": ("vision", "llm")}
# Default module-name suffixes per group (a projector gets every linear layer it has).
DEFAULT_SUFFIXES = {"llm": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
                    "vision": ("q_proj", "k_proj", "v_proj", "out_proj", "o_proj", "qkv", "proj", "fc1", "fc2"),
                    "projector": None}
QUANTIZATIONS = ("none", "4bit")


@dataclass
class VQALoraConfig(VQAGenerationConfig):
    epochs: int = field(default=3, metadata={"help": "Passes over the training questions (best epoch chosen on "
                                                     "validation loss, the untrained start included)."})
    lr: float = field(default=2e-4, metadata={"help": "Peak AdamW learning rate of the LoRA weights."})
    train_batch_size: int = field(default=16, metadata={"help": "Questions per optimisation step."})
    variant: str = field(default="llm", metadata={"help": "Where adapters go: llm, projector or vision_llm."})
    rank: int = field(default=8, metadata={"help": "LoRA rank r."})
    alpha: float = field(default=16.0, metadata={"help": "LoRA scaling numerator (updates scaled by alpha/r)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch's input in training."})
    target_modules: tuple[str, ...] | None = field(default=None, metadata={
        "help": "Module-name suffixes to adapt inside the variant's parts; default: attention + MLP projections "
                "(projector: all of its linear layers)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay of the LoRA weights."})
    warmup_fraction: float = field(default=0.1, metadata={"help": "Share of steps with linear warmup."})
    grad_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass (less memory, one more forward per step)."})
    precision: str = field(default="fp32", metadata={"help": "fp32 or bf16 autocast (bf16 on GPUs)."})
    quantization: str = field(default="none", metadata={
        "help": "none, or 4bit for QLoRA (NF4 base weights; needs CUDA and bitsandbytes)."})
    max_val_questions: int | None = field(default=512, metadata={
        "help": "Validation questions used for the per-epoch loss (a seeded subset; null: all)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_whole("epochs", self.epochs, 1)
        _check_whole("train_batch_size", self.train_batch_size, 1)
        _check_whole("rank", self.rank, 1)
        if self.rank > MAX_LORA_RANK:
            raise ConfigError(f"vqa_lora rank must be a whole number in 1..{MAX_LORA_RANK}, got {self.rank!r}; "
                              "typical ranks are 4 to 64.")
        if self.max_val_questions is not None:
            _check_whole("max_val_questions", self.max_val_questions, 1)
        _check_choice("variant", self.variant, tuple(VARIANTS))
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("quantization", self.quantization, QUANTIZATIONS)
        for name, low, high in (("lr", 0.0, None), ("alpha", 0.0, None), ("dropout", None, 1.0),
                                ("weight_decay", None, None), ("warmup_fraction", None, 1.0)):
            _check_number(name, getattr(self, name), low, high)
        if self.target_modules is not None:
            targets = (self.target_modules,) if isinstance(self.target_modules, str) else tuple(self.target_modules)
            if not targets or not all(isinstance(t, str) and t for t in targets):
                raise ConfigError(f"vqa_lora target_modules must be a non-empty list of module-name suffixes, "
                                  f"got {self.target_modules!r}.")
            self.target_modules = targets


def _check_whole(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"vqa_lora {name} must be a whole number >= {low}, got {value!r}.")


def _check_choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"vqa_lora {name} must be one of {', '.join(choices)}, got {value!r}.")


def _check_number(name: str, value, low: float | None, high: float | None) -> None:
    """Numbers in [0, high) by default; ``low`` given: strictly above it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value > low if low is not None else value >= 0) and (high is None or value < high)
    if not ok:
        bounds = f"> {low}" if low is not None else ">= 0"
        raise ConfigError(f"vqa_lora {name} must be a number {bounds}{f' and < {high}' if high else ''}, "
                          f"got {value!r}.")


def lora_target_names(model, config: VQALoraConfig) -> list[str]:
    """Full names of the linear layers that get adapters, or a clear error listing what the parts contain."""
    import torch

    groups = model.module_groups()
    names = []
    for group in VARIANTS[config.variant]:
        suffixes = config.target_modules or DEFAULT_SUFFIXES[group]
        for prefix in groups.get(group, []):
            for name, module in model.model.named_modules():
                inside = name.startswith(prefix + ".") or name == prefix
                if inside and isinstance(module, torch.nn.Linear) and \
                        (suffixes is None or name.rsplit(".", 1)[-1] in suffixes):
                    names.append(name)
    if not names:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.model.named_modules()
                         if isinstance(m, torch.nn.Linear)})
        raise ConfigError(f"vqa_lora variant {config.variant!r} with target_modules {config.target_modules!r} "
                          f"matches no linear layer of {model.card.id if model.card else 'this model'}; its linear "
                          f"layers end in: {', '.join(linear)}.")
    return sorted(set(names))


def check_quantization(config: VQALoraConfig, device) -> None:
    """QLoRA needs CUDA and bitsandbytes: say which one is missing and what to do."""
    if config.quantization == "none":
        return
    import importlib.util

    missing = [what for what, ok in (("a CUDA GPU", getattr(device, "type", str(device)) == "cuda"),
                                     ("the bitsandbytes package", importlib.util.find_spec("bitsandbytes")))
               if not ok]
    if missing:
        raise MedrivalError(f"vqa_lora quantization: 4bit (QLoRA) needs {' and '.join(missing)}; this run has "
                            f"device {device}. Use quantization: none (plain LoRA), or run on a CUDA machine with "
                            "`pip install bitsandbytes`.")


class VQALora:
    def __init__(self, config: VQALoraConfig):
        self.config = config
        self.base = None  # the shared GenerativeModel
        self.tuned = None  # the same model with adapters (a shallow copy of the wrapper around the peft model)
        self.targets: list[str] = []
        self.result = None
        self.cache = None  # the run's generation cache; keyed by the adapter weights, never the base model's

    def _inject(self, model, seed: int) -> None:
        import copy

        from peft import LoraConfig, get_peft_model

        self.base, self.targets = model, lora_target_names(model, self.config)
        check_rank_fits(model.model, self.targets, self.config.rank, "vqa_lora")  # before peft allocates it
        pattern = "^(" + "|".join(re.escape(name) for name in self.targets) + ")$"
        lora = LoraConfig(r=self.config.rank, lora_alpha=self.config.alpha, lora_dropout=self.config.dropout,
                          target_modules=pattern, bias="none")
        with seeded(seed, model.device), warnings.catch_warnings():
            # peft asks the model for the attribute transformers 5 renamed; the answer is the same, the warning noise
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            peft_model = get_peft_model(model.model, lora)
        self.tuned = copy.copy(model)
        self.tuned.model = peft_model

    def fit(self, model, train, val, features=None, seed: int = 0) -> None:
        if not getattr(model, "supports_training", True):
            name = model.card.id if getattr(model, "card", None) is not None else "this model"
            raise MedrivalError(f"vqa_lora trains the model's weights, but {name} is served by an API; evaluate it "
                                "with vqa_zero_shot, or run an open-weights model locally to fine-tune it.")
        self.cache = getattr(features, "generations", None)
        check_precision(model.device, self.config.precision)
        check_quantization(self.config, model.device)
        if self.config.quantization == "4bit":
            from medrival.models.generative import load_4bit

            model = load_4bit(model)
        self._inject(model, seed)
        if self.config.grad_checkpointing:
            self.tuned.set_grad_checkpointing(True)
        c = self.config
        settings = SFTSettings(c.epochs, c.lr, c.train_batch_size, c.batch_size, c.weight_decay, c.warmup_fraction,
                               c.precision, c.max_val_questions)
        with seeded(seed, model.device):  # LoRA dropout masks
            self.result = train_sft(self.tuned, train, val, settings, seed)
        if self.config.grad_checkpointing:
            self.tuned.set_grad_checkpointing(False)

    def predict(self, test) -> VQAOutput:
        output = answer_questions(self.tuned, test, self.config, cache=self.cache)
        output.trainable_parameters = self.tuned.trainable_parameters()
        output.extras = {"best_epoch": self.result.best_epoch if self.result else None,
                         "validation_losses": self.result.validation_losses if self.result else [],
                         "train_s": self.result.train_seconds if self.result else 0.0,
                         "lora_modules": len(self.targets), "variant": self.config.variant}
        return output

    def _adapter_tensors(self) -> dict:
        return {name: p for name, p in self.tuned.model.named_parameters() if "lora_" in name}

    def save(self, directory) -> None:
        import peft

        chosen = {"best_epoch": self.result.best_epoch if self.result else None, "targets": self.targets,
                  "peft_version": peft.__version__}
        save_checkpoint(directory, "vqa_lora", self.config, chosen, self._adapter_tensors())

    @classmethod
    def load(cls, model, directory) -> "VQALora":
        """Re-inject the saved adapters into ``model``; generations equal the fitted method's."""
        import torch

        config, chosen, arrays = load_checkpoint(directory, "vqa_lora", VQALoraConfig)
        method = cls(config)
        method._inject(model, seed=0)
        tensors = method._adapter_tensors()
        if set(tensors) != set(arrays):
            method.close()
            raise MedrivalError(f"checkpoint {directory} holds adapters for other layers than this model has "
                                f"({len(arrays)} saved, {len(tensors)} here); load it with the model it was "
                                "trained on.")
        with torch.no_grad():
            for name, value in arrays.items():
                tensors[name].copy_(torch.from_numpy(value))
        method.tuned.model.eval()
        return method

    def close(self) -> None:
        """Remove the adapters: the shared model is the base model again."""
        if self.tuned is not None:
            self.tuned.model.unload()
            self.base.model.eval()
            self.tuned = None


METHODS.register("vqa_lora", MethodSpec(
    name="vqa_lora", config_class=VQALoraConfig, build=VQALora, families=("generative",), tasks=("vqa",),
    summary="LoRA SFT (peft) of a generative model on the training questions, loss on answer tokens only; "
            "variants llm / projector / vision_llm, QLoRA 4-bit on CUDA; epoch chosen on validation loss.",
    capabilities=TRAINS_ENCODER))
