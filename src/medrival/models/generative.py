"""The generative protocol served over transformers' image-text-to-text models (LLaVA and kin).

Every conversation is rendered with the checkpoint's own chat template: one user turn holding the image and the
prompt, then the assistant's reply. Three uses share that rendering:

- ``generate``: greedy decoding of the reply. By default questions are grouped by image and each image's prefix
  is filled once (``shared_generation``); the plain path batches whole prompts with left padding.
- ``score_options`` (``option_scoring``): the log-likelihood of each candidate answer as the beginning of the
  reply, so a generative model can be scored as a classifier (with a real AUROC).
- ``training_batch`` / ``loss``: the reply (answer + end-of-turn token) is the only supervised part; prompt,
  image and template tokens and padding carry the ignore label -100.

A reply is appended to the rendered generation prompt as ``separator + answer``, where the separator is what the
template itself writes between its generation prompt and an assistant message's content (e.g. one space). The
answer's tokens are those of the whole text beyond the tokens of the prompt alone (as lm-evaluation-harness does).
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import time
from functools import cached_property
from typing import Any

from medrival.core.errors import DataError, MedrivalError
from medrival.models.checkpointing import set_transformers_checkpointing
from medrival.models.generative_inputs import as_images, check_lengths, evaluating, padding_side, token_limits
from medrival.models.option_scoring import OptionScoring
from medrival.models.precision import LoadOptions, from_pretrained_kwargs
from medrival.models.prefix_sharing import SharingStats, cache_problem, group_rows, image_key, pack_groups
from medrival.models.preprocessing import check_texts
from medrival.models.shared_generation import encode_group, fill_prefixes, generate_chunk

__all__ = ["GenerativeModel", "load_generative_model"]

IGNORE_INDEX = -100  # the label torch's cross-entropy (and transformers' loss) skips
_SENTINEL = "MEDRIVALREPLYSENTINEL"  # stands for a reply when the template is probed for its separator

# Where image-text-to-text models keep their parts, first match wins (LLaVA-style names in transformers 5, then
# older or other layouts). Names are module-name prefixes in the wrapped model.
_GROUP_CANDIDATES = {
    "llm": ("model.language_model", "language_model.model", "language_model"),
    "projector": ("model.multi_modal_projector", "multi_modal_projector", "model.connector", "model.visual.merger"),
    "vision": ("model.vision_tower", "vision_tower", "model.vision_model", "model.visual"),
}


# ------------------------------------------------------------------------------------------------- the adapter
class GenerativeModel(OptionScoring):
    """An image-text-to-text model with its processor, behind medrival's generative protocol."""

    family = "generative"

    def __init__(self, card: Any, model: Any, processor: Any, weights_id: str):
        self.card = card
        self.source: tuple[str, dict] | None = None  # (path or repo, load options): lets QLoRA reload in 4-bit
        self.model = model.eval()
        self.processor = processor
        self._weights_id = weights_id
        self.load_options = LoadOptions()  # dtype / quantization / placement it was loaded with (set by the loader)
        self._model_class = type(model).__name__  # kept: wrapping self.model (peft) must not change the id
        # Each image's prefix is filled once for all its questions (False: every question in full, for comparison)
        self.failures: list[tuple[int, str]] = []  # of the latest generate call: (question index, message)
        self.share_image_prefix = True
        # The K options of a question scored as continuations of one filled prompt (False: K full passes)
        self.one_pass_options = True
        self.sharing_stats = SharingStats(attention=getattr(model.config, "_attn_implementation", None))
        tokenizer = processor.tokenizer
        if tokenizer.pad_token is None:
            # Batching needs a pad token; padded positions are masked out, so eos can serve (usual for Llama).
            tokenizer.pad_token = tokenizer.eos_token

    # ----------------------------------------------------------------------------------------- identity, device
    @property
    def fingerprint(self) -> str:
        """Identifies the weights and the model class, so cached outputs are reused only when both match."""
        # The precision enters only when it is not plain fp32, so outputs cached before it existed stay valid.
        text = f"{self._weights_id}|{self._model_class}{self.load_options.fingerprint_suffix}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def dtype(self) -> str:
        """The resolved precision label: fp32, bf16, fp16, or 4bit (bf16 compute)."""
        return self.load_options.label

    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device) -> "GenerativeModel":
        """Move the model to ``device``; a model placed at load (device_map, 4-bit) stays where it was put."""
        if getattr(self.model, "hf_device_map", None) is None and not getattr(self.model, "is_quantized", False):
            self.model.to(device)
        return self

    @property
    def context_length(self) -> int | None:
        """The most tokens the language model takes (prompt + reply), from its config; None when unstated."""
        config = self.model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        value = getattr(text, "max_position_embeddings", None)
        return int(value) if isinstance(value, int) and value > 0 else None

    def _too_long(self, length: int, limit: int) -> str | None:
        """The per-question failure of a prompt of ``length`` tokens that cannot fit ``limit`` new ones."""
        context = self.context_length
        if context is None or length + limit <= context:
            return None
        return (f"the prompt is {length} tokens (image tokens included) and up to {limit} new tokens were asked, but "
                f"the model takes at most {context} tokens; shorten the question or lower max_new_tokens")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    # -------------------------------------------------------------------------------------- conversation layout
    def _render(self, prompts: list[str]) -> list[str]:
        """Chat-template texts of one user turn (image + prompt) followed by the assistant's prefix, per prompt."""
        if not prompts:
            return []
        # One call for all conversations: each apply_chat_template call has a fixed cost of tens of ms.
        conversations = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
                         for prompt in prompts]
        return list(self.processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=False))

    @cached_property
    def _reply_format(self) -> tuple[str, str]:
        """(separator, end-of-turn token): what the template writes before and after an assistant reply.

        Found by rendering a conversation whose reply is a sentinel word, so answers are appended exactly as the
        template would write them. The end-of-turn token is the special token that follows the reply (e.g.
        ``</s>``, ``<|im_end|>``, ``<end_of_turn>``); templates that close a reply with none get the eos token.
        """
        tokenizer = self.processor.tokenizer
        prompt = self._render(["question"])[0]
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "question"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": _SENTINEL}]}]
        full = self.processor.apply_chat_template(messages, tokenize=False)
        at = full.find(_SENTINEL)
        separator = full[len(prompt):at] if at >= 0 and full.startswith(prompt) else ""
        after = full[at + len(_SENTINEL):].lstrip() if at >= 0 else ""
        specials = sorted(set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab()), key=len, reverse=True)
        end = next((token for token in specials if token and after.startswith(token)), tokenizer.eos_token)
        if not end:
            raise MedrivalError("the checkpoint's tokenizer has no eos token and its chat template closes an "
                                "assistant reply with no special token; training could not teach the model to stop.")
        return separator, end

    def _encode(self, images: list, texts: list[str], side: str) -> dict:
        """Processor output (image tokens expanded, padded on ``side``) as tensors on the model's device."""
        tokenizer = self.processor.tokenizer
        bos = tokenizer.bos_token
        # transformers' own rule (ProcessorMixin.apply_chat_template): a template that writes the bos token
        # itself must not get a second one from the tokenizer.
        add_special = not (bos and texts[0].startswith(bos))
        # One list of images per text: processors that allow several images per prompt (Gemma 3's) read a flat
        # list as all the images of ONE prompt and reject a batch; LLaVA's and Qwen2-VL's accept both layouts.
        nested = [[image] for image in images]
        with padding_side(tokenizer, side):
            encoded = self.processor(images=nested, text=texts, padding=True, return_tensors="pt",
                                     add_special_tokens=add_special)
        dtype, device = next(self.model.parameters()).dtype, self.device
        return {key: value.to(device, dtype) if value.is_floating_point() else value.to(device)
                for key, value in encoded.items()}

    def _prompt_lengths(self, images: list, texts: list[str], batch_size: int) -> list[int]:
        """Token count of each rendered prompt (image tokens included): where its reply starts."""
        lengths = []
        for start in range(0, len(texts), batch_size):
            encoded = self._encode(images[start:start + batch_size], texts[start:start + batch_size], "right")
            lengths.extend(int(n) for n in encoded["attention_mask"].sum(1).tolist())
        return lengths

    # ------------------------------------------------------------------------------------------------ inference
    def generate(self, images, prompts: list[str], *, max_new_tokens: int | list[int] = 16,
                 batch_size: int = 16) -> list[str]:
        """Greedy replies to ``prompts[i]`` about ``images[i]``: the new text only, special tokens dropped.

        ``max_new_tokens`` may be one value per prompt; prompts sharing a value are batched together, so a
        batch decodes with one limit, and results come back in input order.
        """
        images, prompts = as_images(images), check_texts(prompts)
        count = check_lengths(images=images, prompts=prompts)
        limits = token_limits(max_new_tokens, count)
        texts = self._render(prompts)
        self.failures = []  # of this call: (question index, message); those questions get ""
        with self._timed():
            if self.share_image_prefix:
                return self._generate_shared(images, texts, limits, batch_size)
            return self._generate_plain(images, texts, limits, batch_size)

    @contextlib.contextmanager
    def _timed(self):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.sharing_stats.seconds += time.perf_counter() - started

    def _generate_plain(self, images: list, texts: list[str], limits: list[int], batch_size: int,
                        names: list[int] | None = None) -> list[str]:
        """Every question filled in full: batches of equal token limits, in input order. ``names``: each row's
        index in the caller's questions (for ``failures``)."""
        count = len(texts)
        self.sharing_stats.questions += count
        replies: list[str] = [""] * count
        fitting = self._fitting_rows(images, texts, limits, batch_size, names or list(range(count)))
        for limit in sorted(set(limits)):
            # length-grouped (by rendered length): less padding per batch; replies go back by row
            rows = sorted((i for i in fitting if limits[i] == limit), key=lambda i: len(texts[i]))
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                decoded = self._generate_batch([images[i] for i in chunk], [texts[i] for i in chunk], limit)
                for row, reply in zip(chunk, decoded):
                    replies[row] = reply
        return replies

    def _fitting_rows(self, images: list, texts: list[str], limits: list[int], batch_size: int,
                      names: list[int]) -> list[int]:
        """The rows whose prompt and reply fit the context; the others are recorded in ``failures`` under their
        name in ``names`` (the caller's question index)."""
        if self.context_length is None:
            return list(range(len(texts)))
        lengths = self._prompt_lengths(images, texts, batch_size)
        fitting = []
        for row, (length, limit) in enumerate(zip(lengths, limits)):
            problem = self._too_long(length, limit)
            if problem is None:
                fitting.append(row)
            else:
                self.failures.append((names[row], problem))
        return fitting

    def _generate_shared(self, images: list, texts: list[str], limits: list[int], batch_size: int) -> list[str]:
        """Questions grouped by image, each image's prefix filled once (``shared_generation``); images whose
        questions share no prefix take the plain path, the reason kept in ``sharing_stats``."""
        replies: list[str] = [""] * len(texts)
        plain: list[int] = []
        for chunk in pack_groups(group_rows([image_key(image) for image in images]), batch_size):
            groups = [encode_group(self, images[rows[0]], [texts[row] for row in rows], rows) for rows in chunk]
            for group in groups:
                self.sharing_stats.prefill_tokens += sum(len(ids) for ids in group.ids)
                if group.prefix is None:
                    plain.extend(group.rows)
                    self.sharing_stats.plain_reasons.add(group.reason)
            for length in sorted({group.prefix for group in groups if group.prefix is not None}):
                members = [group for group in groups if group.prefix == length]
                plain.extend(self._generate_from_prefixes(members, limits, batch_size, replies))
        self.sharing_stats.questions += len(texts) - len(plain)
        if plain:
            plain.sort()
            answers = self._generate_plain([images[row] for row in plain], [texts[row] for row in plain],
                                           [limits[row] for row in plain], batch_size, names=plain)
            for row, answer in zip(plain, answers):
                replies[row] = answer
        return replies

    def _generate_from_prefixes(self, groups: list, limits: list[int], batch_size: int,
                                replies: list[str]) -> list[int]:
        """Fill the groups' prefixes in one pass, then decode their questions by token limit; returns the rows
        left for the plain path (none unless the cache cannot be reused)."""
        picks = []
        for index, group in enumerate(groups):
            for member, row in enumerate(group.rows):
                problem = self._too_long(len(group.ids[member]), limits[row])
                if problem is None:
                    picks.append((index, member))
                else:
                    self.failures.append((row, problem))
        if not picks:
            return []
        with evaluating(self.model):
            cache, deltas = fill_prefixes(self, groups)
            problem = cache_problem(cache, groups[0].prefix)
            if problem is not None:
                self.sharing_stats.plain_reasons.add(problem)
                return [groups[g].rows[m] for g, m in picks]
            for limit in sorted({limits[groups[g].rows[m]] for g, m in picks}):
                # length-grouped: questions of similar length share a batch (less padding); answers go back by row
                chosen = sorted(((g, m) for g, m in picks if limits[groups[g].rows[m]] == limit),
                                key=lambda pick: len(groups[pick[0]].ids[pick[1]]))
                for start in range(0, len(chosen), batch_size):
                    part = chosen[start:start + batch_size]
                    for (g, m), reply in zip(part, generate_chunk(self, groups, cache, deltas, part, limit)):
                        replies[groups[g].rows[m]] = reply
        self.sharing_stats.prefill_tokens_saved += sum((len(group.rows) - 1) * group.prefix for group in groups)
        return []

    def _generate_batch(self, images: list, texts: list[str], limit: int) -> list[str]:
        tokenizer = self.processor.tokenizer
        # Left padding puts every row's last prompt token at the end, where decoding continues.
        encoded = self._encode(images, texts, "left")
        with evaluating(self.model):
            # Greedy, whatever the checkpoint's generation config suggests (sampling, beams).
            output = self.model.generate(**encoded, max_new_tokens=limit, do_sample=False, num_beams=1,
                                         pad_token_id=tokenizer.pad_token_id)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    @property
    def _keeps_some_logits(self) -> bool:
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # peft
        return "logits_to_keep" in inspect.signature(base.forward).parameters

    # ------------------------------------------------------------------------------------------------- training
    def training_batch(self, images, prompts: list[str], answers: list[str]) -> dict:
        """Teacher-forcing batch (right padded, on the model's device) whose ``labels`` are the input ids on the
        answer tokens and the end-of-turn token, and -100 on prompt, image, template and padding tokens."""
        images, prompts, answers = as_images(images), check_texts(prompts), check_texts(answers)
        count = check_lengths(images=images, prompts=prompts, answers=answers)
        if count == 0:
            raise DataError("training_batch got no examples; give at least one image, prompt and answer.")
        separator, end = self._reply_format
        texts = self._render(prompts)
        starts = self._prompt_lengths(images, texts, count)
        encoded = self._encode(images, [t + separator + a.strip() + end for t, a in zip(texts, answers)], "right")
        labels = encoded["input_ids"].clone()
        labels[encoded["attention_mask"] == 0] = IGNORE_INDEX
        for row, start in enumerate(starts):
            labels[row, :start] = IGNORE_INDEX
        encoded["labels"] = labels
        return encoded

    def loss(self, batch: dict):
        """Mean cross-entropy over the labelled (answer) tokens; transformers shifts the labels itself."""
        if "labels" not in batch:
            raise DataError("loss needs a batch from training_batch (it has no 'labels').")
        return self.model(**batch).loss

    def module_groups(self) -> dict[str, list[str]]:
        """Module-name prefixes of the language model, the multimodal projector and the vision tower.

        The output head (``lm_head``) is in no group: LoRA variants adapt the decoder blocks, not the head.
        Names are relative to ``self.model``; a peft-wrapped model is matched by suffix.
        """
        names = [name for name, _ in self.model.named_modules()]
        present = set(names)
        groups: dict[str, list[str]] = {}
        for group, candidates in _GROUP_CANDIDATES.items():
            found = next((c for c in candidates if c in present), None)
            if found is None:
                suffixed = sorted((n for n in names for c in candidates if n.endswith("." + c)), key=len)
                found = suffixed[0] if suffixed else None
            groups[group] = [found] if found else []
        return groups

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        set_transformers_checkpointing(self.model, enabled)


# -------------------------------------------------------------------------------------------------- loading
def _not_a_checkpoint(what: str, source: str, reason: str, error: Exception | None = None) -> MedrivalError:
    detail = f" ({type(error).__name__}: {error})" if error is not None else ""
    return MedrivalError(
        f"{what}: {source!r} could not be loaded as a transformers image-text-to-text checkpoint: {reason}{detail}. "
        "Expected a Hub repo id or a save_pretrained folder with config.json (a model served by "
        "AutoModelForImageTextToText, e.g. LLaVA), its weights, and its processor files (tokenizer, image "
        "processor, chat template). Fix the path or repo id, or download the checkpoint first "
        "(`hf download REPO --local-dir DIR`) and give that folder.")


def _load_processor(what: str, source: str, options: dict):
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(source, **options)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _not_a_checkpoint(what, source, "its processor did not load", error) from error
    if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
        raise _not_a_checkpoint(what, source, f"AutoProcessor gave a {type(processor).__name__}, not a processor "
                                "with both a tokenizer and an image processor")
    if not getattr(processor, "chat_template", None):
        raise _not_a_checkpoint(what, source, "its processor has no chat template, so prompts cannot be laid out "
                                "as the model was trained")
    return processor


def load_generative_model(card: Any, path_or_repo: str, weights_id: str, *, local_files_only: bool = False,
                          revision: str | None = None, dtype=None,
                          options: LoadOptions | None = None) -> GenerativeModel:
    """Load a ``save_pretrained`` folder or Hub repo as an image-text-to-text model with its processor.

    float32 unless ``options`` (``medrival.models.precision.LoadOptions``: dtype, 4-bit, device_map, max_memory)
    or a torch ``dtype`` say otherwise; remote code is never trusted; weights missing from the checkpoint are an
    error, not silently random-initialised layers. ``card`` (a generative ``ModelCard``) may be None.
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING

    what = f"Model {card.id!r}" if card is not None else "Generative model"
    if card is not None and getattr(card, "family", "generative") != "generative":
        raise MedrivalError(f"{what} is a {card.family} model; load_generative_model serves generative cards only.")
    source = str(path_or_repo)
    options_, options = options, {"revision": revision, "local_files_only": local_files_only,
                                  "trust_remote_code": False}
    try:
        config = AutoConfig.from_pretrained(source, **options)
    except (OSError, ValueError, KeyError) as error:
        raise _not_a_checkpoint(what, source, "its config did not load", error) from error
    if type(config) not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING:
        raise _not_a_checkpoint(what, source, f"its config is a {config.model_type!r} model, which "
                                "AutoModelForImageTextToText does not serve")
    if options_ is None and dtype is not None:  # a torch dtype (older callers)
        options_ = LoadOptions({torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32"))
    options_ = options_ or LoadOptions()
    placement = from_pretrained_kwargs(card.id if card is not None else source, options_)
    try:
        model, info = AutoModelForImageTextToText.from_pretrained(
            source, output_loading_info=True, **placement, **options)
    except (OSError, ValueError, KeyError) as error:
        raise _not_a_checkpoint(what, source, "its weights did not load", error) from error
    if info.get("missing_keys"):
        raise MedrivalError(f"{what}: the checkpoint at {source} lacks weights for "
                            f"{sorted(info['missing_keys'])[:5]}; refusing to serve randomly initialised layers.")
    loaded = GenerativeModel(card, model.eval(), _load_processor(what, source, options), weights_id)
    loaded.source = (source, {"revision": revision, "local_files_only": local_files_only})
    loaded.load_options = options_
    return loaded


def load_4bit(model: GenerativeModel) -> GenerativeModel:
    """The same checkpoint reloaded with NF4 4-bit base weights (QLoRA), on CUDA through bitsandbytes.

    Callers check for CUDA and bitsandbytes first (``vqa_lora`` says which is missing)."""
    import torch
    from transformers import AutoModelForImageTextToText, BitsAndBytesConfig

    if getattr(model, "source", None) is None:
        raise MedrivalError("this model was not loaded from a checkpoint (load_generative_model), so it cannot be "
                            "reloaded in 4-bit; use quantization: none.")
    source, options = model.source
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16)
    network = AutoModelForImageTextToText.from_pretrained(source, quantization_config=quantization,
                                                          device_map={"": model.device}, trust_remote_code=False,
                                                          **options)
    from peft import prepare_model_for_kbit_training

    network = prepare_model_for_kbit_training(network, use_gradient_checkpointing=False)
    quantized = GenerativeModel(model.card, network.eval(), model.processor, f"{model._weights_id}|nf4")
    quantized.source = model.source
    quantized.load_options = model.load_options
    return quantized
