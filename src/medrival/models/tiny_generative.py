"""A tiny, randomly initialised LLaVA checkpoint built offline, for tests and demos of the generative protocol.

The folder has exactly the layout ``save_pretrained`` gives a real ``llava-hf`` checkpoint (config, safetensors
weights, generation config, tokenizer, image processor, processor config and chat template), so the same loader
(``AutoModelForImageTextToText`` + ``AutoProcessor``) serves it and real checkpoints alike.

The tokenizer is a word-level vocabulary trained locally on the caller's texts with the ``tokenizers`` library:
lowercased words (each carrying a leading "▁" for the space before it) and punctuation marks as separate tokens,
so decoding reproduces the lowercased text exactly. Words outside the vocabulary become ``<unk>``.
"""
from __future__ import annotations

from pathlib import Path

PAD, BOS, EOS, UNK, IMAGE = "<pad>", "<s>", "</s>", "<unk>", "<image>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, IMAGE]  # ids 0..4 in this order

# A user turn holds the image placeholder and the text items in the order given; the assistant's reply follows
# " assistant:" and ends with the eos token. No space precedes "<image>": the word-level pre-tokenizer would turn
# a space right before a special token into a lone "▁", which is not a word of the vocabulary.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{ 'user:' }}{%- else -%}{{ ' ' + message['role'] + ':' }}{%- endif -%}"
    "{%- if message['content'] is string -%}{{ ' ' + message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ ' ' + item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{{ eos_token }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ ' assistant:' }}{%- endif -%}"
)
TEMPLATE_WORDS = ["user:", "assistant:", "system:"]  # always in the vocabulary, whatever the texts


def _train_tokenizer(texts: list[str], min_frequency: int):
    """A ``tokenizers.Tokenizer`` with a word-level vocabulary of ``texts`` (plus the template's words)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    # Lowercasing keeps the vocabulary small; any run of whitespace (newlines too) becomes one space, because
    # the Metaspace pre-tokenizer marks only spaces as word boundaries.
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase(), normalizers.Replace(Regex(r"\s+"), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
         pre_tokenizers.Punctuation("isolated")])
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.WordLevelTrainer(vocab_size=1_000_000, min_frequency=min_frequency,
                                        special_tokens=SPECIAL_TOKENS, show_progress=False)
    # The template's words are repeated so that they survive any min_frequency.
    corpus = list(texts) + TEMPLATE_WORDS * max(1, min_frequency)
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    # Like Llama's tokenizer: a bos token starts every encoded text (the chat template does not write one).
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tokenizer.token_to_id(BOS))])
    return tokenizer


def _fast_tokenizer(texts: list[str], min_frequency: int, context_length: int = 512):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(texts, min_frequency), pad_token=PAD, bos_token=BOS, eos_token=EOS,
        unk_token=UNK, extra_special_tokens={"image_token": IMAGE}, chat_template=CHAT_TEMPLATE,
        model_max_length=context_length)


def _context_length(image_size: int, patch_size: int) -> int:
    """512 tokens, or the image's tokens plus 256 for text when that is more (LLaVA-1.5's 336 px at patch 14 is
    576 image tokens)."""
    return max(512, (image_size // patch_size) ** 2 + 256)


def _config(vocab_size: int, image_size: int, patch_size: int, vision_width: int, vision_layers: int,
            text_width: int, text_layers: int, heads: int):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(hidden_size=vision_width, intermediate_size=2 * vision_width,
                              num_hidden_layers=vision_layers, num_attention_heads=heads, image_size=image_size,
                              patch_size=patch_size, projection_dim=vision_width)
    ids = {"pad_token_id": SPECIAL_TOKENS.index(PAD), "bos_token_id": SPECIAL_TOKENS.index(BOS),
           "eos_token_id": SPECIAL_TOKENS.index(EOS)}
    text = LlamaConfig(vocab_size=vocab_size, hidden_size=text_width, intermediate_size=2 * text_width,
                       num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=_context_length(image_size, patch_size), tie_word_embeddings=False,
                       **ids)
    # "default" drops the CLS token, as LLaVA-1.5 does; the last vision layer (not LLaVA's -2) feeds the
    # projector so that every layer of the tiny tower is used and trained.
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=SPECIAL_TOKENS.index(IMAGE),
                       image_seq_length=(image_size // patch_size) ** 2, vision_feature_select_strategy="default",
                       vision_feature_layer=-1, tie_word_embeddings=False, **ids)


def build_tiny_llava(folder: Path, texts: list[str], *, image_size: int = 64, patch_size: int = 8,
                     vision_width: int = 64, vision_layers: int = 2, text_width: int = 128, text_layers: int = 3,
                     heads: int = 4, seed: int = 0, min_frequency: int = 1) -> Path:
    """Write a random-init ``LlavaForConditionalGeneration`` with its processor to ``folder``; returns it.

    ``texts`` are the sentences the word-level tokenizer learns its vocabulary from (questions and answers the
    model will see). The weights depend only on the arguments: the same call writes the same weights.
    """
    import torch
    from transformers import CLIPImageProcessor, GenerationConfig, LlavaForConditionalGeneration, LlavaProcessor

    folder = Path(folder)
    tokenizer = _fast_tokenizer(list(texts), min_frequency, _context_length(image_size, patch_size))
    config = _config(len(tokenizer), image_size, patch_size, vision_width, vision_layers, text_width,
                     text_layers, heads)
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's random state
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config).float().eval()
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                                               pad_token_id=config.pad_token_id, do_sample=False)
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size},
                                         image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])
    # CLIP's vision tower adds a CLS token (+1) that the "default" strategy drops again (-1).
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               image_token=IMAGE, num_additional_image_tokens=1)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder
