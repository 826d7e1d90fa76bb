"""GPU benchmark on random-init, real-size layouts: open_clip ViT-B-16 and a LLaVA-1.5-7B layout, bf16 vs fp32.

Measures image encoding (img/s), a LoRA training step (peft, s/step) and greedy generation (questions/s), and the
peak GPU memory of each against ``medrival.models.precision.memory_estimate``; then questions/s of plain vs shared
image prefixes on the 7B layout in bf16 at batch 16 (a SLAKE-shaped mix). No weights are downloaded: the
layouts are built from configs (open_clip.create_model without pretrained weights; LlavaConfig from a hand-written
config dict: Vicuna-7B text + CLIP ViT-L/14-336 vision) on the meta device, then materialised on the GPU.
fp32 7B is skipped when the GPU's memory does not allow it (the JSON says so).

    python benchmarks/gpu.py            # on a CUDA machine; prints one JSON line last
    python benchmarks/gpu.py --dry-run  # anywhere: build the layouts on meta and print parameter counts

Without CUDA (and without --dry-run) it prints {"skipped": "no CUDA device"} and exits 0.
"""
from __future__ import annotations

import argparse
import json
import time

VICUNA_7B = dict(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5,
                 model_type="llama")
CLIP_L14_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=336, patch_size=14, projection_dim=768, model_type="clip_vision_model")


def llava_config():
    from transformers import LlavaConfig

    return LlavaConfig(text_config=dict(VICUNA_7B), vision_config=dict(CLIP_L14_336), image_token_index=32000,
                       projector_hidden_act="gelu", vision_feature_layer=-2,
                       vision_feature_select_strategy="default")


def build_llava(device: str = "meta", dtype=None):
    """The LLaVA-1.5-7B layout, random-init, built on ``device`` in ``dtype`` (default bf16) by transformers' own
    initialisation, so buffers (CLIP's position ids, rotary frequencies) are real values, not uninitialised memory
    as ``to_empty`` would leave them; on meta it only has shapes."""
    import torch
    from transformers import LlavaForConditionalGeneration

    if device == "meta":
        with torch.device("meta"):
            return LlavaForConditionalGeneration(llava_config())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype or torch.bfloat16)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration(llava_config())
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def build_clip(device: str = "meta"):
    import open_clip
    import torch

    if device == "meta":
        with torch.device("meta"):
            return open_clip.create_model("ViT-B-16", pretrained=None, device="meta")
    return open_clip.create_model("ViT-B-16", pretrained=None, device=device).eval()


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def dry_run() -> dict:
    clip, llava = build_clip(), build_llava()
    return {"dry_run": True, "open_clip_vit_b16_parameters": count(clip), "llava_1.5_7b_parameters": count(llava),
            "llava_language_model": count(llava.model.language_model) + count(llava.lm_head),
            "llava_vision_tower": count(llava.model.vision_tower),
            "llava_projector": count(llava.model.multi_modal_projector)}


def _timed(fn, repeats: int) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def _peak_reset():
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def bench_clip(dtype_name: str) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from medrival.models.precision import memory_estimate, torch_dtype
    from medrival.core.cards import ModelCard

    _peak_reset()
    dtype, batch = torch_dtype(dtype_name), 256
    model = build_clip("cuda").to(dtype)
    pixels = torch.randn(batch, 3, 224, 224, device="cuda", dtype=dtype)
    with torch.inference_mode():
        seconds = _timed(lambda: model.encode_image(pixels), 5)
    card = ModelCard.model_validate({"id": "b16", "family": "contrastive", "role": "generalist",
                                     "source": {"kind": "demo", "name": "x"}, "pretraining_modalities": ["natural"],
                                     "licence": "MIT", "parameters": count(model)})
    tuned = get_peft_model(model.visual, LoraConfig(r=8, target_modules=["out_proj", "c_fc"]))
    optimizer = torch.optim.AdamW([p for p in tuned.parameters() if p.requires_grad], lr=1e-4)
    small = pixels[:32]

    def step():
        loss = tuned(small).float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step_s = _timed(step, 5)
    return {"dtype": dtype_name, "encode_img_per_s": batch / seconds, "lora_step_s_batch32": step_s,
            "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
            "estimate_gb_batch256": memory_estimate(card, dtype_name, batch) / 1e9}


def bench_llava(dtype_name: str) -> dict:
    import torch

    from medrival.models.precision import BYTES_PER_PARAMETER, memory_estimate, torch_dtype
    from medrival.core.cards import ModelCard

    total = count(build_llava())
    need = total * BYTES_PER_PARAMETER[dtype_name] * 1.15
    free, _ = torch.cuda.mem_get_info()
    if need > free:
        return {"dtype": dtype_name, "skipped": f"needs ~{need / 1e9:.0f} GB, {free / 1e9:.0f} GB free"}
    _peak_reset()
    model = build_llava("cuda", torch_dtype(dtype_name))
    config, batch = model.config, 4
    image_tokens = (336 // 14) ** 2
    ids = torch.randint(2, 32000, (batch, 40), device="cuda")
    ids = torch.cat([ids[:, :1], torch.full((batch, image_tokens), config.image_token_index, device="cuda"),
                     ids[:, 1:]], dim=1)
    pixels = torch.randn(batch, 3, 336, 336, device="cuda", dtype=torch_dtype(dtype_name))
    with torch.inference_mode():
        seconds = _timed(lambda: model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=16,
                                                do_sample=False, min_new_tokens=16), 2)
    encode_s = _timed(lambda: model.model.get_image_features(pixel_values=pixels, vision_feature_layer=-2,
                                                             vision_feature_select_strategy="default"), 3)
    from peft import LoraConfig, get_peft_model

    tuned = get_peft_model(model, LoraConfig(r=16, target_modules=["q_proj", "v_proj"]))
    tuned.train()
    optimizer = torch.optim.AdamW([p for p in tuned.parameters() if p.requires_grad], lr=1e-4)

    def step():
        loss = tuned(input_ids=ids[:1], pixel_values=pixels[:1], labels=ids[:1]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step_s = _timed(step, 3)
    card = ModelCard.model_validate({"id": "llava", "family": "generative", "role": "generalist",
                                     "source": {"kind": "demo", "name": "x"}, "pretraining_modalities": ["natural"],
                                     "licence": "MIT", "parameters": total})
    return {"dtype": dtype_name, "generate_q_per_s": batch / seconds, "encode_img_per_s": batch / encode_s,
            "lora_step_s_batch1": step_s, "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
            "estimate_gb_batch4": memory_estimate(card, dtype_name, batch) / 1e9}


def bench_sharing(images: int = 8, batch_size: int = 16) -> dict:
    """Questions/s plain vs shared image prefixes on the LLaVA-1.5-7B layout in bf16, SLAKE-shaped (11 questions
    per image: 8 open up to 16 new tokens, 3 yes/no up to 4), with the demo world's questions and a word-level
    tokenizer trained on them (the random-init weights make the answers noise; both paths must agree)."""
    import torch
    from transformers import CLIPImageProcessor, LlavaProcessor

    from generate import _slake_like
    from medrival.models.generative import GenerativeModel
    from medrival.models.tiny_generative import CHAT_TEMPLATE, IMAGE, _fast_tokenizer

    pictures, questions, limits, vocabulary = _slake_like(images)
    tokenizer = _fast_tokenizer(vocabulary, 1, 4096)
    model = build_llava("cuda", torch.bfloat16)
    model.config.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE)
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 336},
                                                                  crop_size={"height": 336, "width": 336}),
                               tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
                               chat_template=CHAT_TEMPLATE, image_token=IMAGE, num_additional_image_tokens=1)
    generative = GenerativeModel(None, model, processor, "benchmark:llava-1.5-7b-layout")
    generative.generate(pictures[:2], questions[:2], max_new_tokens=2)  # warm-up
    timings, answers = {}, {}
    for shared in (False, True):
        generative.share_image_prefix = shared
        torch.cuda.synchronize()
        started = time.perf_counter()
        answers[shared] = generative.generate(pictures, questions, max_new_tokens=limits, batch_size=batch_size)
        torch.cuda.synchronize()
        timings[shared] = time.perf_counter() - started
    return {"questions": len(questions), "batch_size": batch_size, "dtype": "bf16",
            "plain_q_s": len(questions) / timings[False], "shared_q_s": len(questions) / timings[True],
            "prefix_speedup": timings[False] / timings[True], "identical_answers": answers[False] == answers[True]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="build the layouts on meta and print their sizes")
    args = parser.parse_args()
    if args.dry_run:
        print(json.dumps(dry_run()))
        return
    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device"}))
        return
    results = {"device": torch.cuda.get_device_name(0), "clip_vit_b16": [], "llava_1.5_7b": []}
    for dtype in ("bf16", "fp32"):
        results["clip_vit_b16"].append(bench_clip(dtype))
        results["llava_1.5_7b"].append(bench_llava(dtype))
    torch.cuda.empty_cache()
    results["llava_1.5_7b_prefix_sharing"] = bench_sharing()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
