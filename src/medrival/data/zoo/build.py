"""From a release index to the splits medrival trains and evaluates on, images left undecoded.

A row whose image file is missing, or whose header cannot be parsed, or that is cut short (a PNG or JPEG without
its end marker), is skipped and counted in the split's ``skipped`` (``strict=True`` raises instead). The probe
opens headers and reads file ends only, in a thread pool (it is I/O-bound), so building a split decodes no pixels
of a sound file; the data loader decodes later, in parallel, at the model's input size. A body corrupt in its
middle is found then: :func:`without_undecodable` leaves such rows out (counted) so the runner can retry.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from medrival.core.errors import DataError
from medrival.core.types import ClassificationSplit, DatasetInfo, TaskKind, VQASplit
from medrival.core.vqa_forms import LETTERS, item_forms
from medrival.metrics.vqa import reference_forms
from medrival.data.images import FileImageSource, file_of
from medrival.data.imageio import probe_image
from medrival.data.releases.index import ReleaseIndex, grouped_split
from medrival.data.releases.vqa_index import VQAReleaseIndex

# Per-example attributes carried into a split's meta (cluster keys and subgroup attributes for statistics).
META_COLUMNS = ("patient_id", "group_id", "image_id", "sex", "age", "race", "ethnicity", "language", "view",
                "hospital", "subtype")


def check_index_matches(info: DatasetInfo, index) -> None:
    """The files must describe the registered dataset: same task and the same classes in the same order."""
    if isinstance(index, VQAReleaseIndex):
        return
    if index.task is not info.task or tuple(index.class_names) != tuple(info.class_names):
        raise DataError(f"{info.name}: the files under the root describe a {index.task.value} task with classes "
                        f"{list(index.class_names)}, but {info.name} is registered as {info.task.value} with "
                        f"{list(info.class_names)}. Is the root pointing at another release or version?")


def file_problems(root: Path, references: pd.Series, workers: int = 8, headers: bool = True) -> dict[str, str]:
    """Reference -> reason for every referenced file that is missing or (with ``headers``) whose image header
    cannot be read. ``check`` passes ``headers=False``: it decodes every present file anyway."""
    files = sorted({file_of(str(r)) for r in references})

    def problem(file: str) -> str | None:
        path = root / file
        if not path.is_file():
            return "missing"
        return None if _is_container(file) or not headers else probe_image(path)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        reasons = dict(zip(files, pool.map(problem, files)))
    return {str(r): reasons[file_of(str(r))] for r in references if reasons[file_of(str(r))]}


def _is_container(file: str) -> bool:
    return file.endswith((".npz", ".parquet"))


def _drop_unusable(rows: pd.DataFrame, root: Path, name: str, strict: bool, probe: bool) -> tuple[pd.DataFrame, dict]:
    problems = file_problems(root, rows["image"]) if probe else {}
    if not problems:
        return rows, {}
    if strict:
        first = next(iter(problems.items()))
        raise DataError(f"{name}: {len(problems)} image(s) missing or unreadable under {root} (first: {first[0]}: "
                        f"{first[1]}). Run `medrival datasets check {name} --root {root}` for the list, or drop "
                        "strict to skip them.")
    bad = rows["image"].astype(str).isin(problems)
    reasons = pd.Series([problems[r] for r in rows.loc[bad, "image"].astype(str)])
    skipped = {"missing": int((reasons == "missing").sum()), "unreadable": int((reasons != "missing").sum())}
    return rows[~bad].reset_index(drop=True), skipped


def without_undecodable(split: ClassificationSplit | VQASplit, workers: int | None = None
                        ) -> tuple[ClassificationSplit | VQASplit, dict[str, str]]:
    """``split`` without the rows whose image fails a full decode (each image is decoded, in parallel), those rows
    counted as ``unreadable`` in its ``skipped``; and reference -> reason for each such image. A split held in
    memory, or one whose every image decodes, comes back as it is.

    The header probe that builds a split does not decode pixels, so a file with a sound header and a corrupt body
    is found only when a model's batch is decoded; the runner then calls this and runs the cell again."""
    from medrival.data.loader import scan_decodable

    if isinstance(split.images, np.ndarray):
        return split, {}
    bad = scan_decodable(split.images, workers)
    if not bad:
        return split, bad
    references = split.images.identities()
    keep = np.array([i for i, reference in enumerate(references) if reference not in bad], dtype=np.int64)
    if isinstance(split, VQASplit):
        return _vqa_without(split, keep), bad
    skipped = {**split.skipped, "unreadable": split.skipped.get("unreadable", 0) + len(references) - len(keep)}
    return ClassificationSplit(split.info, split.split, split.images.take(keep), split.labels[keep], split.ids[keep],
                               {k: v[keep] for k, v in split.meta.items()}, skipped=skipped), bad


def _vqa_without(split: VQASplit, keep_images: np.ndarray) -> VQASplit:
    position = np.full(len(split.images), -1, dtype=np.int64)
    position[keep_images] = np.arange(len(keep_images))
    kept = np.flatnonzero(position[split.image_index] >= 0)
    pick = lambda values: [values[i] for i in kept]  # noqa: E731
    dropped = len(split) - len(kept)
    skipped = {**split.skipped, "unreadable": split.skipped.get("unreadable", 0) + dropped}
    return VQASplit(split.info, split.split, split.images.take(keep_images), position[split.image_index[kept]],
                    pick(split.questions), pick(split.answers), pick(split.answer_types), split.ids[kept],
                    split.image_ids[keep_images], skipped=skipped, forms=pick(split.forms),
                    options=pick(split.options))


def classification_split(info: DatasetInfo, index: ReleaseIndex, split: str, root: Path, *, strict: bool = False,
                         probe: bool = True) -> ClassificationSplit:
    """One split of ``index`` as a lazy ClassificationSplit (images decoded on demand)."""
    rows, skipped = _drop_unusable(index.split(split), root, info.name, strict, probe)
    if info.task is TaskKind.MULTILABEL:
        labels = rows[list(index.label_columns)].to_numpy()
        if np.isnan(labels.astype(float)).any():
            raise DataError(f"{info.name}: unlabelled (NaN) entries in the {split} split; studies need every label "
                            "known (an uncertainty policy of zeros or ones).")
        labels = labels.astype(np.int64)  # astype copies: writable
    else:
        labels = np.array(rows["label"], dtype=np.int64)  # a writable copy (pandas may hand out read-only views)
    meta = {c: np.array(rows[c]) for c in META_COLUMNS if c in rows.columns}
    return ClassificationSplit(info, split, FileImageSource(root, rows["image"].to_numpy()), labels,
                               rows["image"].astype(str).to_numpy(), meta, skipped=skipped)


def vqa_split(info: DatasetInfo, index: VQAReleaseIndex, split: str, root: Path, *, strict: bool = False,
              probe: bool = True) -> VQASplit:
    """One split of ``index`` as a VQASplit whose images are decoded on demand; a release without a validation
    split gets one carved from train by image (10 %, seeded), so no image has questions in both."""
    frame = _with_validation(index.frame)
    rows, skipped = _drop_unusable(frame[frame["split"] == split].reset_index(drop=True), root, info.name, strict,
                                   probe)
    image_ids, first = np.unique(rows["image_id"].astype(str).to_numpy(), return_index=True)
    position = {image_id: i for i, image_id in enumerate(image_ids)}
    source = FileImageSource(root, rows["image"].to_numpy()[first])
    forms, options = frame_forms(rows)
    answers = gold_answers(rows)
    # How each item will be scored; a multiple-choice gold outside its options fails here, before any answer.
    reference_forms(answers, forms, options, item_ids=rows["question_id"].astype(str).tolist(), source=info.name)
    return VQASplit(info, split, source, rows["image_id"].astype(str).map(position).to_numpy(dtype=np.int64),
                    rows["question"].tolist(), answers, rows["answer_type"].tolist(),
                    rows["question_id"].astype(str).to_numpy(), image_ids, skipped=skipped, forms=forms,
                    options=options)


def release_options(rows: pd.DataFrame) -> list[tuple | None]:
    """Each row's lettered options from the release's ``option_a``, ``option_b``... columns (None without)."""
    columns = [f"option_{letter.lower()}" for letter in LETTERS if f"option_{letter.lower()}" in rows.columns]
    if not columns:
        return [None] * len(rows)
    return [tuple(value for value in values if isinstance(value, str) and value.strip()) or None
            for values in rows[columns].itertuples(index=False, name=None)]


def gold_answers(rows: pd.DataFrame) -> list[str]:
    """Each row's gold: its letter where the release gives one (``answer_label``: an option's text may itself be a
    letter, as in MedXpertQA), else the answer text."""
    if "answer_label" not in rows.columns:
        return rows["answer"].tolist()
    return [label if isinstance(label, str) and label.strip() else answer
            for label, answer in zip(rows["answer_label"], rows["answer"])]


def frame_forms(rows: pd.DataFrame) -> tuple[list[str], list[tuple | None]]:
    """Forms and options of an index frame's rows from the question, the release's declared answer type (only
    where the release gives one) and its lettered options -- the ``answer`` column is never read."""
    declared = [kind if source == "release" else None
                for kind, source in zip(rows["answer_type"], rows["answer_type_source"])]
    return item_forms(rows["question"].tolist(), declared, release_options(rows))


def _with_validation(frame: pd.DataFrame) -> pd.DataFrame:
    if (frame["split"] == "val").any():
        return frame
    frame = frame.copy()
    train = frame["split"] == "train"
    frame.loc[train, "split"] = grouped_split(frame.loc[train, "image_id"], (0.9, 0.1, 0.0), seed=0).to_numpy()
    return frame
