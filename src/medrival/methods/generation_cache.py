"""Content-addressed cache of generated answers and option scores, shared by every cell of every study.

It lives beside the image-feature cache (``<feature cache>/generations.sqlite``) and stores each answer and each
option-score row as it is produced (one transaction per generation batch), so a killed VQA cell resumes at the
first missing batch and a question asked again with the same model, prompt, image and settings is free.

A row's key hashes:

- the model's state: its fingerprint (weights + class), parameter dtype and device type, and the trained state --
  every adapter (peft ``lora_*``) weight and, when only part of the model is trainable, every trainable weight,
  plus ``trained_state`` when a method set one -- so a fine-tuned model never gets its base model's answers;
- the fully rendered prompt (the model's chat template applied) and the image's content hash;
- the settings: ``max_new_tokens`` and greedy decoding for answers, the option list and batch size for scores;
- for local models, the composition of the batch the answer was generated in (every row key of that batch, in
  order): left-padded batched generation may depend on its batch mates, so a cached answer is reused only where
  a cold run would form exactly the same batch, and answers are identical with and without the cache. API models
  answer each request alone: their answers are keyed per question, and only successful answers are stored.

SQLite in WAL mode with a busy timeout and one connection per operation: several worker processes may read and
write at once (on a local disk). Any failure of the cache (disk full, a damaged file, a locked database past the
timeout) warns once and the run goes on uncached; the cache never fails a cell.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from medrival.models.prefix_sharing import image_units

CACHE_FILE = "generations.sqlite"
SCHEMA_VERSION = 1  # part of every key: a change of key layout never reads older rows
BUSY_TIMEOUT_S = 60.0
_CHUNK = 500  # keys per SELECT ... IN (...)

log = logging.getLogger(__name__)


class GenerationCache:
    """Generated answers and option scores by content key. ``path`` None: disabled (every lookup misses).

    ``hits`` and ``misses`` count questions (answers) and rows (option scores) served from the cache and
    computed by the model since this object was made; a cell records its own share of them."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.hits = 0
        self.misses = 0
        self.broken: str | None = None  # why the cache was switched off for this run, after a failure
        self._ready = False

    @property
    def enabled(self) -> bool:
        return self.path is not None and self.broken is None

    def counts(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}

    # ------------------------------------------------------------------------------------------------- storage
    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not self._ready:
            connection.execute("PRAGMA journal_mode = WAL")  # persistent in the file: set once per run is enough
            connection.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, kind TEXT NOT NULL, "
                               "value TEXT NOT NULL, created REAL NOT NULL)")
            self._ready = True
        connection.execute("PRAGMA synchronous = NORMAL")  # WAL: a commit survives a killed process
        return connection

    def fetch(self, keys: Sequence[str]) -> dict[str, str]:
        """The stored values of those ``keys`` that are cached (one connection for all of them)."""
        wanted = sorted(set(keys))
        if not self.enabled or not wanted:
            return {}
        try:
            connection = self._connect()
            try:
                found: dict[str, str] = {}
                for start in range(0, len(wanted), _CHUNK):
                    part = wanted[start:start + _CHUNK]
                    rows = connection.execute(
                        f"SELECT key, value FROM generations WHERE key IN ({','.join('?' * len(part))})", part)
                    found.update(rows.fetchall())
                return found
            finally:
                connection.close()
        except Exception as error:  # noqa: BLE001 - the cache must never fail a cell
            self._fail(error)
            return {}

    def store(self, kind: str, items: Sequence[tuple[str, str]]) -> None:
        """Write (key, value) pairs in one transaction: a batch is stored whole or not at all."""
        if not self.enabled or not items:
            return
        try:
            connection = self._connect()
            try:
                now = time.time()
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany("INSERT OR REPLACE INTO generations (key, kind, value, created) "
                                       "VALUES (?, ?, ?, ?)", [(key, kind, value, now) for key, value in items])
                connection.execute("COMMIT")
            finally:
                connection.close()
        except Exception as error:  # noqa: BLE001
            self._fail(error)

    def count(self) -> int:
        """Rows stored (0 when disabled or unreadable)."""
        if not self.enabled or not self.path.is_file():
            return 0
        try:
            connection = self._connect()
            try:
                return int(connection.execute("SELECT COUNT(*) FROM generations").fetchone()[0])
            finally:
                connection.close()
        except Exception as error:  # noqa: BLE001
            self._fail(error)
            return 0

    def _fail(self, error: BaseException) -> None:
        if self.broken is None:
            self.broken = f"{type(error).__name__}: {error}"
            message = (f"the generation cache {self.path} failed ({self.broken}); this run goes on without it "
                       "(answers are generated, not reused). Free disk space or delete the file to start it afresh.")
            log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)


def usage_from(features) -> dict[str, int]:
    """The counts of the generation cache a run's feature cache holds (zeros when it holds none)."""
    cache = getattr(features, "generations", None)
    return cache.counts() if isinstance(cache, GenerationCache) else {"hits": 0, "misses": 0}


def usage_since(features, before: dict[str, int]) -> dict[str, int]:
    """What a cell took from (``hits``) and added to (``misses``) the generation cache since ``before``."""
    now = usage_from(features)
    return {name: now[name] - before[name] for name in ("hits", "misses")}


# ----------------------------------------------------------------------------------------------------- key parts
def digest(*parts: Any) -> str:
    text = json.dumps([SCHEMA_VERSION, *parts], sort_keys=True, ensure_ascii=False, default=_plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def image_hash(image: Any) -> str:
    array = np.ascontiguousarray(np.asarray(image))
    content = hashlib.blake2b(array.tobytes(), digest_size=16)
    content.update(f"{array.shape}|{array.dtype.str}".encode())
    return content.hexdigest()


def image_hashes(images: Sequence[Any]) -> list[str]:
    """Content hash per image, hashing an image object that recurs (questions about one image) once."""
    seen: dict[int, str] = {}
    hashes = []
    for image in images:
        if id(image) not in seen:
            seen[id(image)] = image_hash(image)
        hashes.append(seen[id(image)])
    return hashes


def _tensor_bytes(tensor) -> bytes:
    import torch

    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def model_state(model) -> str:
    """The part of a key that names what the model computes: weights, class, dtype, device type, trained state.

    Adapter weights (names with ``lora_`` or ``modules_to_save``) are always hashed, and when only part of the
    network is trainable (a tuned subset over a frozen base) every trainable weight is too; a model whose every
    weight was trained in place must carry ``trained_state`` (``train_sft`` sets one)."""
    parts: dict[str, Any] = {"fingerprint": str(getattr(model, "fingerprint", type(model).__qualname__)),
                             "class": type(model).__qualname__, "trained": getattr(model, "trained_state", None),
                             "precision": str(getattr(model, "dtype", None))}
    network = getattr(model, "model", None)
    if hasattr(network, "named_parameters"):
        parameters = list(network.named_parameters())
        if parameters:
            parts["dtype"] = str(parameters[0][1].dtype)
            parts["device"] = parameters[0][1].device.type
        partial = any(p.requires_grad for _, p in parameters) and not all(p.requires_grad for _, p in parameters)
        weights = hashlib.sha256()
        for name, parameter in parameters:
            if "lora_" in name or "modules_to_save" in name or (partial and parameter.requires_grad):
                weights.update(name.encode())
                weights.update(_tensor_bytes(parameter))
        parts["adapters"] = weights.hexdigest()
        if getattr(network, "peft_config", None) is not None:
            parts["peft"] = {str(k): _plain(v) for k, v in network.peft_config.items()}
    return digest("model", parts)


def rendered_prompts(model, prompts: Sequence[str]) -> list[str]:
    """Each prompt as the model sees it (its chat template applied); API models see the prompt itself."""
    render = getattr(model, "_render", None)
    return list(render(list(prompts))) if callable(render) else list(prompts)


def active(cache: GenerationCache | None) -> bool:
    """Whether ``cache`` can be read and written now (keys are worth computing)."""
    return cache is not None and cache.enabled


def is_api_model(model) -> bool:
    """Models that answer each request alone and report failures over a whole call (``ApiGenerativeModel``)."""
    return bool(getattr(model, "answers_each_request_alone", False))


# ---------------------------------------------------------------------------------------- cached computations
def cached_batches(cache: GenerationCache | None, kind: str, row_keys: Sequence[str],
                   batches: Sequence[Sequence[int]], compute: Callable[[list[int]], list],
                   encode: Callable[[Any], str], decode: Callable[[str], Any], *,
                   context: Any = None, on_batch: Callable[[], None] | None = None) -> list:
    """``compute`` run on each batch of rows whose answers are not all cached; the values of every row.

    A row is keyed by its ``row_keys`` entry and the whole batch's composition (with ``context``), so a cached
    value is one a cold run computes in the very same batch. Each computed batch is stored at once, whole."""
    cache = cache if cache is not None else GenerationCache(None)
    keys = [[digest(kind, row_keys[row], [row_keys[r] for r in batch], context) if cache.enabled else ""
             for row in batch] for batch in batches]
    found = cache.fetch([key for batch_keys in keys for key in batch_keys]) if cache.enabled else {}
    values: list = [None] * len(row_keys)
    for batch, batch_keys in zip(batches, keys):
        batch = list(batch)
        decoded = _decode_all(cache, [found.get(key) for key in batch_keys], decode)
        if decoded is not None:
            cache.hits += len(batch)
        else:
            decoded = list(compute(batch))
            cache.misses += len(batch)
            cache.store(kind, [(key, encode(value)) for key, value in zip(batch_keys, decoded)])
        for row, value in zip(batch, decoded):
            values[row] = value
        if on_batch is not None:
            on_batch()
    return values


def _decode_all(cache: GenerationCache, stored: list, decode) -> list | None:
    if not stored or any(value is None for value in stored):
        return None
    try:
        return [decode(value) for value in stored]
    except Exception as error:  # noqa: BLE001 - a damaged row is recomputed; the cache is then distrusted
        cache._fail(error)
        return None


def answer_keys(model, images: Sequence[Any], prompts: Sequence[str], limits: Sequence[int]) -> list[str]:
    """One key per question: model state, rendered prompt, image content and generation settings."""
    state, texts = model_state(model), rendered_prompts(model, prompts)
    return [digest("answer", state, text, image, {"max_new_tokens": int(limit), "decoding": "greedy"})
            for text, image, limit in zip(texts, image_hashes(images), limits)]


def cached_api_answers(cache: GenerationCache | None, model, images: list, prompts: list[str], limits: list[int],
                       batch_size: int) -> tuple[list[str], list[tuple[int, str]]]:
    """An API model's replies, asking only the questions not cached, in one call (its failure rules span the
    call); successful replies are stored, failures never. Returns (replies, failures by question row)."""
    cache = cache if cache is not None else GenerationCache(None)
    keys = [digest("api-answer", key) for key in answer_keys(model, images, prompts, limits)] if cache.enabled \
        else [""] * len(prompts)
    found = cache.fetch(keys) if cache.enabled else {}
    replies = [found.get(key) for key in keys]
    missing = [row for row, reply in enumerate(replies) if reply is None]
    cache.hits += len(keys) - len(missing)
    failures: list[tuple[int, str]] = []
    if missing:
        answers = model.generate([images[i] for i in missing], [prompts[i] for i in missing],
                                 max_new_tokens=[limits[i] for i in missing], batch_size=batch_size)
        cache.misses += len(missing)
        failures = [(missing[index], message) for index, message in getattr(model, "failures", [])]
        failed = {row for row, _ in failures}
        for row, answer in zip(missing, answers):
            replies[row] = answer
        cache.store("api-answer", [(keys[row], replies[row]) for row in missing if row not in failed])
    return [reply if reply is not None else "" for reply in replies], sorted(failures)


def _score_row(text: str, width: int) -> np.ndarray:
    row = np.asarray(json.loads(text), dtype=np.float64)
    if row.shape != (width,):
        raise ValueError(f"a cached score row has shape {row.shape}, expected ({width},)")
    return row


def cached_option_scores(cache: GenerationCache | None, model, images: Sequence[Any], prompts: Sequence[str],
                         options: Sequence[str], batch_size: int) -> np.ndarray:
    """``model.score_options(images, prompts, options, batch_size=batch_size)`` (N x K, float64), scoring only
    the rows not cached; ``options`` is the one list of K options every row is scored on."""
    options = [str(option) for option in options]
    count, width = len(prompts), len(options)
    if count == 0:
        return np.zeros((0, width), dtype=np.float64)
    images = list(images)
    if not active(cache):  # one call: the same batches, nothing to look up
        if cache is not None:
            cache.misses += count
        return np.asarray(model.score_options(images, list(prompts), options, batch_size=batch_size),
                          dtype=np.float64)
    state, texts, hashes = model_state(model), rendered_prompts(model, prompts), image_hashes(images)
    row_keys = [digest("scores", state, text, image, options) for text, image in zip(texts, hashes)]

    def compute(rows: list[int]) -> list:
        scores = model.score_options([images[i] for i in rows], [prompts[i] for i in rows], options,
                                     batch_size=batch_size)
        return [np.asarray(row, dtype=np.float64) for row in scores]

    # The units are the image chunks score_options forms itself, so cached and cold scores come from equal batches
    values = cached_batches(cache, "scores", row_keys, image_units(hashes, batch_size), compute,
                            encode=lambda row: json.dumps([float(v) for v in row]),
                            decode=lambda text: _score_row(text, width),
                            context={"batch_size": batch_size})
    return np.vstack(values).reshape(count, width)
