"""PathVQA (He et al., 2020) in its two common layouts; the questions are all derived from pathology textbooks.

1. Original release: ``qas/{train,val,test}/{split}_qa.pkl``, each a pickled list of dicts
   ``{"image": "train_0422", "question": ..., "answer": ...}`` with images at ``images/{split}/{image}.jpg``.
   Pickle is a code-execution format, so the files are read with :class:`RestrictedUnpickler`, which admits
   no global at all: plain lists, dicts, strings and numbers need none, and anything else (a class, a function,
   ``os.system``) is refused with a DataError before it can run.
2. Hugging Face parquet (``flaviagiammarino/path-vqa``): ``data/{train,validation,test}-*.parquet`` with columns
   ``image`` (struct ``bytes``/``path``), ``question``, ``answer``. Images are never decoded: ``image`` becomes a
   ``parquet:<file>#<row>`` reference, and ``image_id`` is the stem of ``image.path`` when the release filled it,
   else a hash of the image bytes (so questions about the same picture still share an id for clustering).

Neither layout labels answer types: "closed" is derived from the question (yes/no shaped, or stating its options;
never from the answer) and recorded as derived.
"""
from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from medrival.core.errors import DataError
from medrival.data.releases.vqa_index import (
    PARQUET_PREFIX, SPLITS, VQAReleaseIndex, build_frame, check_root, derive_answer_type, normalise_text, require_file,
    safe_relpath,
)

RELEASE = "PathVQA"
LICENCE = "MIT"
SOURCE = "https://github.com/UCSD-AI4H/PathVQA"
PICKLE_SPLITS = {"train": "train", "val": "val", "test": "test"}
# HF split names in parquet file names -> medrival split names.
PARQUET_SPLITS = {"train": "train", "validation": "val", "val": "val", "test": "test"}
_NOTE_DERIVED = ("PathVQA has no answer_type field: closed = yes/no-shaped questions or questions stating their "
                 "options (derived from the question text, never the answer).")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global: only built-in containers and scalars can be loaded.

    Every opcode that could run code (GLOBAL/STACK_GLOBAL, INST, OBJ, EXT*) goes through ``find_class``, so
    refusing here means a hostile pickle fails before anything executes.
    """

    release = RELEASE

    def find_class(self, module: str, name: str) -> Any:
        raise DataError(f"{self.release}: refusing to load {module}.{name} from a pickle; only plain lists, "
                        "dicts, strings and numbers are accepted (pickles can execute code on load).")

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.release}: pickle uses persistent ids; not a plain data pickle.")


def safe_load_pickle(path: Path, *, release: str = RELEASE) -> Any:
    """Load ``path`` with :class:`RestrictedUnpickler`; every failure is a DataError naming the file."""
    require_file(path, release=release)
    data = path.read_bytes()
    unpickler = RestrictedUnpickler(io.BytesIO(data), encoding="utf-8")  # py2 str pickles decode as UTF-8
    unpickler.release = release
    try:
        return unpickler.load()
    except DataError:
        raise
    except Exception as err:  # UnpicklingError, EOFError, UnicodeDecodeError, ... from corrupt input
        raise DataError(f"{release}: could not read {str(path)!r} as a plain-data pickle ({err!r}).") from err


def _pickle_rows(root: Path, split: str) -> Iterator[dict]:
    name = f"qas/{split}/{split}_qa.pkl"
    records = safe_load_pickle(root / name)
    if not isinstance(records, list):
        raise DataError(f"{RELEASE}: {name!r} must hold a list of question dicts, found {type(records).__name__}.")
    for position, record in enumerate(records):
        if not isinstance(record, dict) or not {"image", "question", "answer"} <= set(record):
            raise DataError(f"{RELEASE}: {name!r} item #{position} must be a dict with keys image, question, "
                            f"answer; found {record!r:.120}.")
        image = safe_relpath(record["image"], release=RELEASE)
        answer, question = normalise_text(record["answer"]), normalise_text(record["question"])
        yield {"question_id": f"{split}-{position:06d}", "image": f"images/{split}/{image}.jpg",
               "image_id": image, "question": question, "answer": answer,
               "answer_type": derive_answer_type(question), "answer_type_source": "derived", "split": split}


def load_pathvqa_pickles(root: Path | str) -> VQAReleaseIndex:
    """Index the original PathVQA release under ``root`` (``qas/`` + ``images/``) without executing code."""
    root = check_root(root, release=RELEASE)
    rows = [row for split in PICKLE_SPLITS for row in _pickle_rows(root, split)]
    frame = build_frame(rows, release=RELEASE)
    return VQAReleaseIndex("pathvqa", "pathology", frame, LICENCE, SOURCE, [_NOTE_DERIVED])


def _parquet_files(root: Path) -> list[tuple[str, Path]]:
    """(split, file) for every ``{split}-*.parquet`` under ``root/data`` or ``root``, in a stable order."""
    found = []
    for folder in (root / "data", root):
        for path in sorted(folder.glob("*.parquet")):
            split = PARQUET_SPLITS.get(path.name.split("-", 1)[0].lower())
            if split is None:
                raise DataError(f"{RELEASE}: parquet file {path.name!r} is not named '<split>-*.parquet' with "
                                f"split one of {sorted(PARQUET_SPLITS)}.")
            found.append((split, path))
        if found:  # train, val, test order; shards by name within a split
            return sorted(found, key=lambda item: (SPLITS.index(item[0]), item[1].name))
    raise DataError(f"{RELEASE}: no parquet files found; expected {root / 'data'}/{{train,validation,test}}-*.parquet "
                    "(Hugging Face layout of flaviagiammarino/path-vqa).")


def _image_ids(column: pa.Array, file: str) -> list[str]:
    """Image ids from the ``image`` struct without decoding: path stem when present, else a bytes hash."""
    if not pa.types.is_struct(column.type) or "bytes" not in {f.name for f in column.type}:
        raise DataError(f"{RELEASE}: column 'image' of {file!r} must be a struct with fields bytes/path "
                        f"(Hugging Face Image feature); found {column.type}.")
    has_path = "path" in {f.name for f in column.type}
    out = []
    for item in column.to_pylist():
        path = (item or {}).get("path") if has_path else None
        if path:
            out.append(PurePosixPath(str(path).replace("\\", "/")).stem)
        else:
            payload = (item or {}).get("bytes") or b""
            out.append("sha1:" + hashlib.sha1(payload).hexdigest()[:16])
    return out


def _parquet_batches(path: Path, relative: str) -> Iterator[pa.RecordBatch]:
    # Batches keep memory bounded: the train file holds ~20k embedded images.
    wanted = ["image", "question", "answer"]
    try:
        handle = pq.ParquetFile(path)
        missing = [c for c in wanted if c not in handle.schema_arrow.names]
        if missing:  # iter_batches would silently drop absent columns
            raise DataError(f"{RELEASE}: {relative!r} lacks columns {missing}; expected image, question, answer "
                            f"(found: {', '.join(handle.schema_arrow.names)}).")
        yield from handle.iter_batches(batch_size=2048, columns=wanted)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{RELEASE}: could not read columns image, question, answer from {relative!r} "
                        f"({err}).") from err


def _parquet_rows(root: Path, split: str, path: Path, start: int) -> Iterable[dict]:
    relative = path.relative_to(root).as_posix()
    row = 0
    for batch in _parquet_batches(path, relative):
        ids = _image_ids(batch.column("image"), relative)
        questions, answers = batch.column("question").to_pylist(), batch.column("answer").to_pylist()
        for image_id, question, answer in zip(ids, questions, answers):
            text, asked = normalise_text(answer), normalise_text(question)
            yield {"question_id": f"{split}-{start + row:06d}", "image": f"{PARQUET_PREFIX}{relative}#{row}",
                   "image_id": image_id, "question": asked, "answer": text,
                   "answer_type": derive_answer_type(asked), "answer_type_source": "derived", "split": split}
            row += 1


def load_pathvqa_parquet(root: Path | str) -> VQAReleaseIndex:
    """Index the Hugging Face parquet layout of PathVQA under ``root`` (image bytes are hashed, never decoded)."""
    root = check_root(root, release=RELEASE)
    rows: list[dict] = []
    per_split: dict[str, int] = {}
    for split, path in _parquet_files(root):
        new = list(_parquet_rows(root, split, path, per_split.get(split, 0)))
        per_split[split] = per_split.get(split, 0) + len(new)
        rows.extend(new)
    frame = build_frame(rows, release=RELEASE)
    notes = [_NOTE_DERIVED, "Hugging Face parquet layout; image = parquet:<file>#<row>."]
    return VQAReleaseIndex("pathvqa", "pathology", frame, LICENCE, SOURCE, notes)


def load_pathvqa(root: Path | str) -> VQAReleaseIndex:
    """Either layout: the original pickles when ``qas/`` exists under ``root``, else the parquet files."""
    root = check_root(root, release=RELEASE)
    if (root / "qas").is_dir():
        return load_pathvqa_pickles(root)
    return load_pathvqa_parquet(root)
