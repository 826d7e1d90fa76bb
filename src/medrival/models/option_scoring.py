"""Option scoring of a local generative model: log p(option | image, prompt) as the start of the reply.

One pass (the default): each prompt is filled once, its image's prefix shared with the other questions on that
image (``shared_generation``), and its K options are scored as continuations of that cache in one batch. The
plain path (``one_pass_options = False``, or when an option's tokens would merge with the prompt's last ones)
fills every (prompt, option) pair in full, right-padded so that scores do not depend on batching.
"""
from __future__ import annotations

import numpy as np

from medrival.core.errors import DataError
from medrival.models.generative_inputs import (as_images, check_lengths, continuation_logprobs, evaluating,
                                               option_rows)
from medrival.models.prefix_sharing import cache_problem, group_rows, image_key, pack_groups
from medrival.models.preprocessing import check_texts
from medrival.models.shared_generation import encode_group, fill_prefixes, fill_prompts, option_logprobs


class OptionScoring:
    """``score_options`` for ``GenerativeModel`` (which provides rendering, encoding and the model)."""

    def score_options(self, images, prompts: list[str], options, *, batch_size: int = 16) -> np.ndarray:
        """N x K float64: log p(option k | image i, prompt i) summed over the option's tokens, as the start of
        the assistant's reply. ``options``: K strings for every prompt, or N lists of K strings."""
        images, prompts = as_images(images), check_texts(prompts)
        count = check_lengths(images=images, prompts=prompts)
        options = list(options) if hasattr(options, "__iter__") and not isinstance(options, (str, bytes)) else options
        rows = option_rows(options, count)
        width = len(rows[0]) if rows else len(options)  # N = 0 still gives N x K
        if count == 0:
            return np.zeros((0, width), dtype=np.float64)
        texts = self._render(prompts)
        with self._timed():
            if self.one_pass_options:
                continuations = self._continuations(texts, rows)
                if continuations is not None:
                    return self._score_one_pass(images, texts, rows, continuations, batch_size)
                self.sharing_stats.plain_reasons.add("an option's tokens depend on the prompt's last tokens")
            return self._score_plain(images, texts, rows, batch_size)

    def _continuations(self, texts: list[str], rows: list[list[str]]) -> list[list[list[int]]] | None:
        """Each option's token ids as the plain path scores them: the tokens of prompt + separator + option
        beyond the prompt's own (the tokenizer splits at the image's special tokens, so the text after them
        tokenizes alike with or without the image expanded). None when a prompt's tokens are not a prefix of
        its continued text's (a merge across the boundary)."""
        tokenizer = self.processor.tokenizer
        separator, _ = self._reply_format
        bos = tokenizer.bos_token
        special = not (bos and texts[0].startswith(bos))
        prompts = tokenizer(texts, add_special_tokens=special)["input_ids"]
        full = tokenizer([text + separator + option for text, options in zip(texts, rows) for option in options],
                         add_special_tokens=special)["input_ids"]
        width, result = len(rows[0]), []
        for index, prompt in enumerate(prompts):
            options = [ids[len(prompt):] for ids in full[index * width:(index + 1) * width]]
            if any(not tokens for tokens in options):
                raise DataError("an answer option added no tokens after the prompt; options must be non-empty text.")
            if any(ids[:len(prompt)] != prompt for ids in full[index * width:(index + 1) * width]):
                return None
            result.append(options)
        return result

    def _score_one_pass(self, images: list, texts: list[str], options: list[list[str]], continuations,
                        batch_size: int) -> np.ndarray:
        """Each prompt filled once (its image's prefix shared), its K options scored as continuations of that
        cache in batches of about ``batch_size`` (prompt, option) rows."""
        width = len(continuations[0])
        scores = np.zeros((len(texts), width), dtype=np.float64)
        plain: list[int] = []
        for chunk in pack_groups(group_rows([image_key(image) for image in images]), max(1, batch_size)):
            groups = [encode_group(self, images[rows[0]], [texts[row] for row in rows], rows) for rows in chunk]
            for group in groups:
                self.sharing_stats.prefill_tokens += width * sum(len(ids) for ids in group.ids)
                if group.prefix is None:
                    plain.extend(group.rows)
                    self.sharing_stats.plain_reasons.add(group.reason)
            for length in sorted({group.prefix for group in groups if group.prefix is not None}):
                members = [group for group in groups if group.prefix == length]
                plain.extend(self._score_from_prefixes(members, continuations, batch_size, scores))
        self.sharing_stats.questions += len(texts) - len(plain)
        if plain:
            plain.sort()
            scores[plain] = self._score_plain([images[row] for row in plain], [texts[row] for row in plain],
                                              [options[row] for row in plain], batch_size)
        return scores

    def _score_from_prefixes(self, groups: list, continuations, batch_size: int, scores: np.ndarray) -> list[int]:
        width = len(continuations[0])
        with evaluating(self.model):
            cache, deltas = fill_prefixes(self, groups)
            problem = cache_problem(cache, groups[0].prefix)
            if problem is not None:
                self.sharing_stats.plain_reasons.add(problem)
                return [row for group in groups for row in group.rows]
            picks = sorted(((g, m) for g, group in enumerate(groups) for m in range(len(group.rows))),
                           key=lambda pick: len(groups[pick[0]].ids[pick[1]]))  # length-grouped
            per_batch = max(1, batch_size // width)  # prompts whose K options make one batch of ~batch_size rows
            for start in range(0, len(picks), per_batch):  # filled a batch at a time: memory as a plain batch
                part = picks[start:start + per_batch]
                filled = fill_prompts(self, groups, cache, deltas, part)
                rows = [groups[g].rows[m] for g, m in part]
                scores[rows] = option_logprobs(self, filled, list(range(len(part))),
                                               [continuations[row] for row in rows])
        saved_prompt = sum((len(group.rows) - 1) * group.prefix for group in groups)
        saved_options = (width - 1) * sum(len(ids) for group in groups for ids in group.ids)
        self.sharing_stats.prefill_tokens_saved += width * saved_prompt + saved_options
        return []

    def _score_plain(self, images: list, texts: list[str], rows: list[list[str]], batch_size: int) -> np.ndarray:
        """K passes: every (prompt, option) pair filled in full."""
        count, width = len(texts), len(rows[0]) if rows else 0
        separator, _ = self._reply_format
        self.sharing_stats.questions += count
        starts = self._prompt_lengths(images, texts, batch_size)
        pairs = [(i, k) for i in range(count) for k in range(width)]
        scores = np.zeros((count, width), dtype=np.float64)
        for begin in range(0, len(pairs), batch_size):
            chunk = pairs[begin:begin + batch_size]
            values = self._score_batch([images[i] for i, _ in chunk],
                                       [texts[i] + separator + rows[i][k] for i, k in chunk],
                                       [starts[i] for i, _ in chunk])
            for (i, k), value in zip(chunk, values):
                scores[i, k] = value
        return scores

    def _score_batch(self, images: list, texts: list[str], starts: list[int]) -> list[float]:
        import torch

        # Right padding keeps every real token at its unpadded position, so scores do not depend on batching.
        encoded = self._encode(images, texts, "right")
        ends = [int(n) for n in encoded["attention_mask"].sum(1).tolist()]
        if any(end <= start for start, end in zip(starts, ends)):
            raise DataError("an answer option added no tokens after the prompt; options must be non-empty text.")
        first, extra = 0, {}
        if self._keeps_some_logits:
            # Logits only where options are predicted: vocabulary x sequence logits of a real model are GBs.
            first = min(starts) - 1
            extra["logits_to_keep"] = torch.arange(first, max(ends) - 1, device=self.device)
        with evaluating(self.model):
            logits = self.model(**encoded, **extra).logits
            return continuation_logprobs(logits, encoded["input_ids"], first, starts, ends)
