"""The local study runner: study spec -> cells -> results in the store.

Finished cells are skipped (so a re-run or a resumed run does only what is missing); a failing cell is recorded
with its error and the study goes on; each image set is encoded once per model through the feature cache.
Pending cells run grouped by model, then dataset, so each model is loaded once per study.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from medrival.core.errors import ConfigError, MedrivalError
from medrival.core.progress import ProgressArg, StudyListener, as_listener, reporting_to
from medrival.core.types import CellSpec
from medrival.data.catalog import dataset_registry
from medrival.methods import METHODS
from medrival.metrics.vqa import VQA_VERSIONS
from medrival.models.catalog import get_card, model_registry
from medrival.store import LeaseKeeper, ResultStore, new_owner, owner_is_dead
from medrival.study import preflight
from medrival.study.driver import LEASE_TTL_S, StoreDriver
from medrival.study.executors.groups import group_cells, shard_groups
from medrival.study.executors.local import run_in_process
from medrival.study.executors.processes import run_in_children
from medrival.study.executors.ray_executor import run_on_ray
from medrival.study.executors.worker import WorkerSettings
from medrival.study.fingerprints import attach_inputs
from medrival.study.plan_file import end_plan, write_plan
from medrival.study.registration import register_study_names
from medrival.study.spec import StudySpec, cell_id, check_names, check_weights, expand_cells, freeze


@dataclass
class StudyRun:
    store: ResultStore
    cells: list[CellSpec]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        ids = {cell_id(c) for c in self.cells}
        frame = self.store.results_frame()
        return frame[frame["cell_id"].isin(ids)].reset_index(drop=True)


def plan_cells(spec: StudySpec, skipped: list[str] | None = None) -> list[CellSpec]:
    """Validate names and method/model/dataset compatibility, then expand; nothing runs on a bad study.

    With ``unsupported: skip`` the combinations a method cannot run are left out instead, each described once
    in ``skipped`` (when a list is given)."""
    register_study_names(spec)
    check_names(spec, {"models": model_registry().names(), "datasets": dataset_registry().names(),
                       "methods": METHODS.names()})
    problems, unsupported = [], {}
    for entry in spec.methods:
        method = METHODS.get(entry.name)
        try:
            method.make_config(entry.config)
        except ConfigError as error:
            problems.append(str(error))
        for model in spec.models:
            for dataset in spec.datasets:
                why = method.check_supports(get_card(model).family, dataset_registry().get(dataset).info.task.value)
                if why:
                    unsupported[(model, dataset, entry.name)] = f"{why} (model {model!r}, dataset {dataset!r})."
    if spec.unsupported == "refuse":
        problems += list(unsupported.values())
    check_weights(spec)
    problems += missing_datasets(spec)
    if problems:
        raise ConfigError(f"{spec.source}: the study cannot run as written:\n- "
                          + "\n- ".join(dict.fromkeys(problems)) + "\nRemove those combinations or pick others"
                          + (" (or set unsupported: skip)." if unsupported else "."))
    cells = expand_cells(spec, lambda name, config: METHODS.get(name).normalised_config(config))
    return attach_inputs(spec, _drop_unsupported(spec, cells, unsupported, skipped))


def _drop_unsupported(spec: StudySpec, cells: list[CellSpec], unsupported: dict, skipped: list[str] | None):
    """Leave out unsupported combinations; label budgets on VQA datasets (questions have no class to draw
    shots from) collapse into one full-budget cell, and are refused unless the study says ``unsupported: skip``.
    Off-the-shelf methods read no labels and train nothing (greedy decoding, fixed prompts), so their budgets and
    seeds collapse into one full-budget cell: it runs once and is the baseline of every budget and seed, never
    re-run and relabelled."""
    vqa = {name for name in spec.datasets if dataset_registry().get(name).info.task.value == "vqa"}
    budgeted = sorted({c.dataset for c in cells if c.dataset in vqa and c.budget != "full"})
    if budgeted and spec.unsupported == "refuse":
        raise ConfigError(f"{spec.source}: label budgets (fewshot) apply to diagnosis datasets only, but the study "
                          f"lists the VQA dataset(s) {', '.join(budgeted)}; set unsupported: skip to run them "
                          "at full budget only, or move them to a study without fewshot.")
    if skipped is not None:
        skipped += list(unsupported.values())
        skipped += [f"label budgets on VQA dataset {name!r} (it runs at full budget only)." for name in budgeted]
    keep = []
    for cell in cells:
        if (cell.model, cell.dataset, cell.method) in unsupported:
            continue
        off_the_shelf = METHODS.get(cell.method).capabilities.off_the_shelf
        if (cell.dataset in vqa or off_the_shelf) and cell.budget != "full":
            # No labels read (an off-the-shelf method) or none to draw (VQA): one cell, the baseline of every budget.
            cell = replace(cell, shots=None, fraction=None, draw=0, subsample_val=False)
        if off_the_shelf:  # nothing is trained or sampled: every seed would repeat the first seed's numbers
            cell = replace(cell, seed=min(seeds_of(spec, cell.method, cell.label)))
        if cell.dataset in vqa:
            cell = replace(cell, vqa_rules=freeze(VQA_VERSIONS))
        if cell.dataset in vqa and spec.llm_judge is not None:
            cell = replace(cell, judge=freeze(spec.llm_judge.model_dump()))
        if cell.dataset in vqa and spec.answer_extractor is not None:  # its prompt version is part of the id
            cell = replace(cell, extractor=freeze(spec.answer_extractor.cell_settings()))
        keep.append(cell)
    return list(dict.fromkeys(keep))  # collapsed budgets leave one full-budget cell


def seeds_of(spec: StudySpec, method: str, label: str | None) -> list[int]:
    """The seeds of a method entry (its own ``seeds:``, else the study's)."""
    for entry in spec.methods:
        if entry.name == method and entry.label == label and entry.seeds:
            return list(entry.seeds)
    return list(spec.seeds)


def missing_datasets(spec: StudySpec) -> list[str]:
    """One problem per real dataset whose annotation files are not where the study says (or the default)."""
    from medrival.data.zoo.api import read_release
    from medrival.data.zoo.registry import release_registry

    problems = []
    for name in spec.datasets:
        if name in release_registry():
            try:
                read_release(name, spec.data_roots.get(name))
            except MedrivalError as error:
                problems.append(f"dataset {name!r} is not readable: {error} (medrival prepare {name} shows how "
                                "to get it; data_roots: in the study says where it is)")
    return problems


def feature_cache_dir(spec: StudySpec, store_dir: str | Path) -> Path:
    """The study's ``feature_cache``, else ``$MEDRIVAL_FEATURE_CACHE``, else the store's own ``features`` folder."""
    chosen = spec.feature_cache or os.environ.get("MEDRIVAL_FEATURE_CACHE")
    return Path(chosen).expanduser() if chosen else Path(store_dir) / "features"


def _left_out_summary(left_out: list[str], shown: int = 3) -> str:
    """How many combinations ``unsupported: skip`` left out, with the first few reasons."""
    more = f"\n  ... and {len(left_out) - shown} more" if len(left_out) > shown else ""
    return (f"{len(left_out)} unsupported combination(s) left out (unsupported: skip), e.g.:\n  "
            + "\n  ".join(left_out[:shown]) + more)


def save_analysis_settings(spec: StudySpec, store: ResultStore) -> None:
    """The study's verdict settings (margins, exposure mode) beside its store, so that ``medrival report`` and
    ``compare`` judge the stored results as the study asked (``medrival.stats.questions.analysis_settings``)."""
    import json

    from medrival.stats.questions import ANALYSIS_FILE

    settings = {"study": spec.name, "margins": dict(spec.verdicts.margin), "exposure": spec.exposure}
    (store.root / ANALYSIS_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study: still a ``KeyboardInterrupt`` for callers that expect one, carrying the partial
    ``StudyRun`` (every cell in it is saved whole; the cell in flight is not saved at all)."""

    def __init__(self, run: StudyRun):
        super().__init__("study interrupted")
        self.run = run


def cell_label(cell: CellSpec) -> str:
    """``model | dataset | method | budget | seed``: how progress lines and the live display name a cell."""
    budget = "" if cell.budget == "full" else f" | {cell.budget} draw {cell.draw}"
    return f"{cell.model} | {cell.dataset} | {cell.method}{budget} | seed {cell.seed}"


def run_study(spec: StudySpec, store_dir: str | Path, progress: ProgressArg = lambda _: None,
              jobs: int | str | None = None, shard: tuple[int, int] | None = None) -> StudyRun:
    """Run every pending cell of ``spec`` into the store at ``store_dir``.

    ``progress``: a callable receiving one line per finished cell (``print``), or a
    ``medrival.core.progress.StudyListener`` for richer events (cell started, inner stages such as epochs).
    ``jobs`` (default: the study's ``jobs``): model groups run at once in child processes; ``shard`` (i, N):
    only this shard's part of the planned cells (``--shard i/N``, for job arrays; merge stores afterwards).
    Ctrl-C raises ``StudyInterrupted`` (a ``KeyboardInterrupt``) carrying what finished."""
    listener = as_listener(progress)
    left_out: list[str] = []
    cells = plan_cells(spec, left_out)
    if shard is not None:  # from the whole plan, so every array task computes the same split
        cells = [c for group in shard_groups(group_cells(cells), *shard) for c in group.cells]
    if left_out:
        listener.message(_left_out_summary(left_out))
    store = ResultStore(store_dir)
    save_analysis_settings(spec, store)
    run = StudyRun(store, cells)
    finished, ids = store.finished_ids(), {cell: cell_id(cell) for cell in cells}
    pending = sorted((c for c in cells if ids[c] not in finished),
                     key=lambda c: (spec.models.index(c.model), spec.datasets.index(c.dataset)))
    run.skipped = [ids[c] for c in cells if ids[c] in finished]
    # Every model whose weights cannot be had, named at once before hours of other cells (finished need none).
    preflight.check_weights(spec, models={c.model for c in pending})
    preflight.check_memory(spec, models={c.model for c in pending})  # too large for the device: refused
    write_plan(store.root, spec.name, [(ids[c], c) for c in cells])
    listener.planned(len(pending), len(cells), len(run.skipped))
    _execute(spec, store_dir, run, group_cells(pending), listener, jobs if jobs is not None else spec.jobs)
    # Our leases are released by now: any left belong to a concurrent run on this store, still at work.
    others = [lease for lease in store.active_leases() if not owner_is_dead(lease.owner)]
    end_plan(store.root, "finished", others_running=bool(others))
    return run


def _execute(spec: StudySpec, store_dir, run: StudyRun, groups, listener: StudyListener, jobs) -> None:
    """Run the groups here (one job, no isolation), in child processes or on Ray; results saved as they arrive."""
    on_ray = spec.executor.kind == "ray"
    count, gpus = (1, []) if on_ray else resolve_jobs(jobs, len(groups), spec.device)
    isolated = on_ray or count > 1 or spec.isolation == "process"
    settings = worker_settings(spec, store_dir, threads=max(1, usable_cores() // count) if isolated else None)
    if on_ray:  # one thread per task: Ray packs tasks onto the cluster's CPUs
        settings = replace(settings, threads=1)
    driver = StoreDriver(run, listener, sum(len(g.cells) for g in groups), new_owner(), cell_label)
    context = None if isolated else settings.context()
    started = time.perf_counter()
    try:
        with LeaseKeeper(run.store, driver.owner, LEASE_TTL_S), reporting_to(listener):
            if on_ray:
                run_on_ray(groups, spec, settings, driver, spec.executor.address, spec.executor.num_cpus)
            elif isolated:
                run_in_children(groups, spec, settings, count, driver, gpus)
            else:
                run_in_process(groups, settings, driver, context)
    except KeyboardInterrupt as interrupt:
        run.timings = {"wall_s": time.perf_counter() - started, **(context.timings() if context else {})}
        end_plan(run.store.root, "interrupted")
        raise StudyInterrupted(run) from interrupt
    run.timings = {"wall_s": time.perf_counter() - started, **(context.timings() if context else {})}
    if driver.held_elsewhere:
        listener.message(f"{len(driver.held_elsewhere)} cell(s) were being run by another process on this store "
                         "(or finished meanwhile); they are not run twice. Run again later to pick up any it "
                         "leaves.")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_jobs(jobs, groups: int, device: str) -> tuple[int, list[str]]:
    """(number of child processes, GPU ids to pin them to) for ``jobs`` (a number or "auto")."""
    gpus: list[str] = []
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.device_count() > 1:
            gpus = [str(i) for i in range(torch.cuda.device_count())]
    if jobs == "auto":
        count = len(gpus) if gpus else min(usable_cores(), 8)
    else:
        count = int(jobs)
    return max(1, min(count, max(groups, 1))), gpus


def worker_settings(spec: StudySpec, store_dir, threads: int | None) -> WorkerSettings:
    """What every worker of this run needs to build its own context."""
    return WorkerSettings(str(feature_cache_dir(spec, store_dir)), spec.device,
                          str(Path(store_dir) / "checkpoints") if spec.save_checkpoints else None,
                          data_roots=dict(spec.data_roots), strict_images=spec.strict_images, threads=threads)
