"""Content-addressed image-feature cache shared by every cell of a study.

A split is encoded once per (model weights + preprocessing, image content): the key hashes the model's
fingerprint and the split's image bytes, so zero-shot and linear-probe cells of the same model and dataset,
re-runs, and other studies on the same machine all reuse one encoding. Files are written atomically.
Few-shot subsets are served as rows of their parent split's features, and identical images inside a split are
encoded once, so ``encoded_images`` counts every distinct image a model had to see exactly once.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from medrival.core.tempfiles import TEMP_SUFFIX, remove_stale_temp_files, temp_path_for
from medrival.core.types import ClassificationSplit
from medrival.methods.generation_cache import CACHE_FILE, GenerationCache


class FeatureCache:
    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root is not None else None
        if self.root is not None:  # leftovers of interrupted writes (dead pid, or a day old; older ".tmp-*.npy")
            remove_stale_temp_files(self.root, (f".*{TEMP_SUFFIX}", ".tmp-*.npy"))
        self._memory: dict[str, np.ndarray] = {}
        self._texts: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
        self.hits = 0
        self.misses = 0
        self.encode_seconds = 0.0
        self.encoded_images = 0  # images passed through an image encoder by this cache
        self.batch_size = 256  # images per decoded batch of a lazy (file) split
        # Generated answers and option scores live beside the features (``medrival.methods.generation_cache``).
        self.generations = GenerationCache(self.root / CACHE_FILE if self.root is not None else None)

    def key(self, model, split: ClassificationSplit) -> str:
        return f"{model.fingerprint}-{split.fingerprint()}"

    def image_features(self, model, split: ClassificationSplit) -> np.ndarray:
        """L2-normalised image embeddings (N x D float32) for every image of ``split``."""
        if split.parent is not None:
            return self.image_features(model, split.parent)[split.parent_indices]
        key = self.key(model, split)
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        features = self._read(key)
        if features is None:
            self.misses += 1
            features = (self._encode_lazy(model, split) if split.lazy
                        else self._encode_distinct(model, split.images))
            self._write(key, features)
        else:
            self.hits += 1
        self._memory[key] = features
        return features

    def text_embeddings(self, model, texts: list[str]) -> np.ndarray:
        """Normalised text embeddings (M x D float32), encoded once per model and prompt list for the run: every
        method that starts from the zero-shot classifier, in every few-shot draw and seed, asks for the same
        prompts. Kept in memory only; prompts are cheap to encode once."""
        key = (model.fingerprint, tuple(texts))
        if key not in self._texts:
            self._texts[key] = model.encode_texts(list(texts)).numpy().astype(np.float32)
        return self._texts[key]

    def release_memory(self) -> None:
        """Drop the in-memory copies (the on-disk cache stays): called when a run moves to the next model, whose
        features never share a key with the previous model's."""
        self._memory.clear()
        self._texts.clear()

    def _encode_distinct(self, model, images: np.ndarray) -> np.ndarray:
        """Encode each distinct image once and scatter the rows back to every copy."""
        unique_rows, inverse = _distinct(hashlib.blake2b(image.tobytes(), digest_size=16).digest()
                                         for image in images)
        started = time.perf_counter()
        encoded = model.encode_images(images[unique_rows]).numpy().astype(np.float32)
        self.encode_seconds += time.perf_counter() - started
        self.encoded_images += len(unique_rows)
        return encoded[inverse]

    def _encode_lazy(self, model, split: ClassificationSplit) -> np.ndarray:
        """Decode (in parallel, straight to the model's input size) and encode each distinct stored image once."""
        unique_rows, inverse = _distinct(split.images.identities())
        started = time.perf_counter()
        parts = [model.encode_images(batch).numpy().astype(np.float32)
                 for batch in split.images.take(unique_rows).batches(model.geometry, self.batch_size)]
        encoded = np.concatenate(parts) if parts else np.zeros((0, model.embed_dim), np.float32)
        self.encode_seconds += time.perf_counter() - started
        self.encoded_images += len(unique_rows)
        return encoded[inverse]

    def _path(self, key: str) -> Path | None:
        return None if self.root is None else self.root / f"{key}.npy"

    def _read(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged cache entry is recomputed, never trusted

    def _write(self, key: str, features: np.ndarray) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = temp_path_for(path)  # carries the pid: a killed writer's leftover is removed at the next open
        try:
            with open(temp, "wb") as stream:
                np.save(stream, features, allow_pickle=False)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)  # gone already after the rename; removed on any failure


def _distinct(keys) -> tuple[list[int], np.ndarray]:
    """(first row of each distinct key, for every row the position of its key among them)."""
    index_of: dict = {}
    unique_rows: list[int] = []
    inverse = []
    for row, key in enumerate(keys):
        if key not in index_of:
            index_of[key] = len(unique_rows)
            unique_rows.append(row)
        inverse.append(index_of[key])
    return unique_rows, np.asarray(inverse, dtype=np.int64)
