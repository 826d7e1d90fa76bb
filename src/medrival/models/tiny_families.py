"""Tiny, randomly initialised Qwen2-VL, Qwen2.5-VL, Gemma 3 and Idefics3 (SmolVLM) checkpoints built offline, for tests of the generative adapter.

Like ``tiny_generative.build_tiny_llava``, each builder writes exactly what ``save_pretrained`` gives a real
checkpoint of the family (config, safetensors weights, generation config, tokenizer, image processor, processor
config, chat template), so ``load_generative_model`` serves them as it serves ``Qwen/Qwen2-VL-*-Instruct`` or
``google/gemma-3-*-it``: same model and processor classes, the family's special tokens and a chat template laid out
like the family's own. Only the sizes are tiny (a few hundred thousand parameters).

The tokenizers are byte-level BPE vocabularies trained locally on the caller's texts with the ``tokenizers``
library (like Qwen2's; Gemma's is a SentencePiece BPE, which byte-level BPE stands in for): any text encodes
without unknown tokens and decoding reproduces it exactly, newlines of the chat templates included.
"""
from __future__ import annotations

from pathlib import Path

# ------------------------------------------------------------------------------------------------ Qwen2-VL
QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                       "<|image_pad|>", "<|video_pad|>"]  # ids 0..6 in this order (Qwen2: 151643..151656)
# Qwen2-VL-Instruct's template, less the video and image-counting options: a default system turn, then one
# ChatML turn per message; an image item is <|vision_start|><|image_pad|><|vision_end|> (the processor expands
# <|image_pad|> to the image's merged patch count).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_TEMPLATE_TEXTS = ["system", "user", "assistant", "You are a helpful assistant."]

# -------------------------------------------------------------------------------------------------- Gemma 3
GEMMA_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
                        "<start_of_image>", "<end_of_image>", "<image_soft_token>"]  # ids 0..8 (Gemma: 0, 1, 2, 3)
# Gemma 3's template: bos, then <start_of_turn>role\n ... <end_of_turn>\n per message (the assistant is "model"),
# a system message folded into the first user turn, text items trimmed; an image item is <start_of_image>, which
# the processor expands to "\n\n<start_of_image>" + mm_tokens_per_image soft tokens + "<end_of_image>\n\n".
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}"
    "{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
GEMMA_TEMPLATE_TEXTS = ["user", "model", "system"]


def _bpe_tokenizer(texts: list[str], special_tokens: list[str], vocab_size: int, bos: str | None = None):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts``; ``special_tokens`` get ids 0, 1, ...

    With ``bos``, every encoded text starts with it (Gemma's tokenizer adds ``<bos>``; Qwen2's adds nothing).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    if bos is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tokenizer.token_to_id(bos))])
    return tokenizer


def _seeded(model_class, config, seed: int, after_init=None):
    """``model_class(config)`` in float32 and eval mode, initialised from ``seed``; ``after_init(model)`` may
    re-initialise parts under the same seeded random state."""
    import torch

    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's random state
        torch.manual_seed(seed)
        model = model_class(config).float().eval()
        if after_init is not None:
            with torch.no_grad():
                after_init(model)
        return model


def _save(folder: Path, model, processor) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder


def build_tiny_qwen2_vl(folder: Path, texts: list[str], seed: int = 0) -> Path:
    """Write a random-init ``Qwen2VLForConditionalGeneration`` with its ``Qwen2VLProcessor`` to ``folder``.

    Images are resized (aspect kept) to between 56 x 56 and 56 x 112 pixels, multiples of 28: a 56 x 56 image
    is 4 x 4 patches of 14 pixels, merged 2 x 2 into 4 image tokens. ``texts`` are what the tokenizer learns its
    vocabulary from. The weights depend only on the arguments: the same call writes the same weights.
    """
    return _save(folder, *tiny_qwen2_vl(texts, seed))


def tiny_qwen2_vl(texts: list[str], seed: int = 0):
    """(model, processor) that ``build_tiny_qwen2_vl`` saves, in memory."""
    from transformers import (GenerationConfig, PreTrainedTokenizerFast, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor,
                              Qwen2VLVideoProcessor)

    ids = {token: index for index, token in enumerate(QWEN_SPECIAL_TOKENS)}
    backend = _bpe_tokenizer(list(texts) + QWEN_TEMPLATE_TEXTS, QWEN_SPECIAL_TOKENS, vocab_size=512)
    # As Qwen2-VL-Instruct's tokenizer: no bos, <|im_end|> ends a reply, <|endoftext|> pads.
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        chat_template=QWEN_CHAT_TEMPLATE, model_max_length=1024)
    text = {"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 1024,
            # head_dim 32: the 16 rotary frequencies are split over (time, height, width) positions.
            "rope_parameters": {"rope_type": "default", "mrope_section": [4, 6, 6], "rope_theta": 1_000_000.0},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"]}
    vision = {"depth": 2, "embed_dim": 32, "hidden_size": 64, "mlp_ratio": 2, "num_heads": 2, "patch_size": 14,
              "spatial_merge_size": 2, "temporal_patch_size": 2}
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False,
                           bos_token_id=text["bos_token_id"], eos_token_id=text["eos_token_id"],
                           pad_token_id=text["pad_token_id"])
    model = _seeded(Qwen2VLForConditionalGeneration, config, seed)
    model.generation_config = GenerationConfig(bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                                               eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
                                               do_sample=False)
    pixels = {"min_pixels": 56 * 56, "max_pixels": 56 * 112, "patch_size": 14, "temporal_patch_size": 2,
              "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**pixels), tokenizer=tokenizer,
                                 video_processor=Qwen2VLVideoProcessor(**pixels), chat_template=QWEN_CHAT_TEMPLATE)
    return model, processor


def build_tiny_qwen2_5_vl(folder: Path, texts: list[str], seed: int = 0) -> Path:
    """Write a random-init ``Qwen2_5_VLForConditionalGeneration`` (Qwen2.5-VL's and Lingshu's class) with its
    processor: Qwen2-VL's tokenizer, template and image geometry; a vision tower with window attention (window 56
    pixels) and one full-attention block."""
    return _save(folder, *tiny_qwen2_5_vl(texts, seed))


def tiny_qwen2_5_vl(texts: list[str], seed: int = 0):
    """(model, processor) that ``build_tiny_qwen2_5_vl`` saves, in memory."""
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    twin, qwen2_processor = tiny_qwen2_vl(texts, seed)  # the same tokenizer, template, text sizes and pixels
    text = twin.config.text_config.to_dict()
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 14,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56, "fullatt_block_indexes": [1],
              "out_hidden_size": text["hidden_size"]}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=twin.config.image_token_id,
                              video_token_id=twin.config.video_token_id,
                              vision_start_token_id=twin.config.vision_start_token_id,
                              vision_end_token_id=twin.config.vision_end_token_id, tie_word_embeddings=False,
                              bos_token_id=text["bos_token_id"], eos_token_id=text["eos_token_id"],
                              pad_token_id=text["pad_token_id"])
    model = _seeded(Qwen2_5_VLForConditionalGeneration, config, seed)
    model.generation_config = twin.generation_config
    pixels = qwen2_processor.image_processor.to_dict()
    pixels = {key: pixels[key] for key in ("min_pixels", "max_pixels", "patch_size", "temporal_patch_size",
                                           "merge_size", "image_mean", "image_std") if key in pixels}
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**pixels),
                                    tokenizer=qwen2_processor.tokenizer,
                                    video_processor=Qwen2VLVideoProcessor(**pixels), chat_template=QWEN_CHAT_TEMPLATE)
    return model, processor


def build_tiny_gemma3(folder: Path, texts: list[str], seed: int = 0) -> Path:
    """Write a random-init ``Gemma3ForConditionalGeneration`` with its ``Gemma3Processor`` to ``folder``.

    Images are resized to 32 x 32 (SigLIP style): 4 x 4 patches of 8 pixels, average-pooled 2 x 2 into 4 image
    soft tokens (``mm_tokens_per_image``). ``texts`` are what the tokenizer learns its vocabulary from. The
    weights depend only on the arguments: the same call writes the same weights.
    """
    return _save(folder, *tiny_gemma3(texts, seed))


def tiny_gemma3(texts: list[str], seed: int = 0):
    """(model, processor) that ``build_tiny_gemma3`` saves, in memory."""
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor,
                              GenerationConfig, PreTrainedTokenizerFast)

    ids = {token: index for index, token in enumerate(GEMMA_SPECIAL_TOKENS)}
    image_size, patch_size, tokens_per_image = 32, 8, 4
    backend = _bpe_tokenizer(list(texts) + GEMMA_TEMPLATE_TEXTS, GEMMA_SPECIAL_TOKENS, vocab_size=512, bos="<bos>")
    # As Gemma 3's tokenizer: a bos starts every encoded text (the template writes it too, so the adapter then
    # encodes without special tokens); the image tokens are named so that Gemma3Processor finds them.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
        chat_template=GEMMA_CHAT_TEMPLATE, model_max_length=1024)
    text = {"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "query_pre_attn_scalar": 32,
            "max_position_embeddings": 1024, "sliding_window": 512,
            "layer_types": ["sliding_attention", "full_attention"],  # both of Gemma 3's attention kinds
            "pad_token_id": ids["<pad>"], "eos_token_id": ids["<eos>"], "bos_token_id": ids["<bos>"]}
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": image_size, "patch_size": patch_size}
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=tokens_per_image,
                          boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
                          image_token_index=ids["<image_soft_token>"], tie_word_embeddings=True,
                          pad_token_id=ids["<pad>"], eos_token_id=ids["<eos>"], bos_token_id=ids["<bos>"])
    # transformers initialises Gemma 3's image projection to zeros (trained checkpoints overwrite it): random
    # values instead, so that images reach the language model and the vision tower gets gradients from step one.
    model = _seeded(Gemma3ForConditionalGeneration, config, seed,
                    lambda m: m.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.05))
    model.generation_config = GenerationConfig(bos_token_id=ids["<bos>"], pad_token_id=ids["<pad>"],
                                               eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]], do_sample=False)
    image_processor = Gemma3ImageProcessor(size={"height": image_size, "width": image_size},
                                           image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
                                           do_pan_and_scan=False)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                chat_template=GEMMA_CHAT_TEMPLATE, image_seq_length=tokens_per_image)
    return model, processor


# ------------------------------------------------------------------------------------------ Idefics3 (SmolVLM)
IDEFICS3_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
                           "<image>", "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7)
                                                         for j in range(1, 7)]
# SmolVLM-Instruct's layout: "<|im_start|>User:<image>question<end_of_utterance>\nAssistant:"; the processor expands
# <image> to <fake_token_around_image><global-img> + image_seq_len x <image> + <fake_token_around_image>.
IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS3_TEMPLATE_TEXTS = ["User:", "Assistant:", "System:"]


def build_tiny_idefics3(folder: Path, texts: list[str], seed: int = 0) -> Path:
    """Write a random-init ``Idefics3ForConditionalGeneration`` (SmolVLM's class) with its ``Idefics3Processor``.

    Images are resized to 32 x 32 without splitting: 4 x 4 patches of 8 pixels, pixel-shuffled (scale factor 2)
    into 4 image tokens. The weights depend only on the arguments."""
    return _save(folder, *tiny_idefics3(texts, seed))


def tiny_idefics3(texts: list[str], seed: int = 0):
    """(model, processor) that ``build_tiny_idefics3`` saves, in memory."""
    from transformers import (GenerationConfig, Idefics3Config, Idefics3ForConditionalGeneration,
                              Idefics3ImageProcessor, Idefics3Processor, PreTrainedTokenizerFast)

    ids = {token: index for index, token in enumerate(IDEFICS3_SPECIAL_TOKENS)}
    backend = _bpe_tokenizer(list(texts) + IDEFICS3_TEMPLATE_TEXTS, IDEFICS3_SPECIAL_TOKENS, vocab_size=512)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<end_of_utterance>",
                                        pad_token="<|endoftext|>", bos_token="<|im_start|>",
                                        chat_template=IDEFICS3_CHAT_TEMPLATE, model_max_length=1024)
    text = {"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 1024, "pad_token_id": ids["<|endoftext|>"],
            "bos_token_id": ids["<|im_start|>"], "eos_token_id": ids["<end_of_utterance>"]}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    config = Idefics3Config(text_config=text, vision_config=vision, scale_factor=2, image_token_id=ids["<image>"],
                            tie_word_embeddings=False, pad_token_id=ids["<|endoftext|>"])
    model = _seeded(Idefics3ForConditionalGeneration, config, seed)
    model.generation_config = GenerationConfig(bos_token_id=ids["<|im_start|>"], pad_token_id=ids["<|endoftext|>"],
                                               eos_token_id=ids["<end_of_utterance>"], do_sample=False)
    image_processor = Idefics3ImageProcessor(do_image_splitting=False, size={"longest_edge": 32},
                                             max_image_size={"longest_edge": 32}, image_mean=[0.5, 0.5, 0.5],
                                             image_std=[0.5, 0.5, 0.5])
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                  chat_template=IDEFICS3_CHAT_TEMPLATE)
    return model, processor
