"""Leases: atomic claims across processes, expiry and take-over, heartbeats, release on save."""
from __future__ import annotations

import multiprocessing
import random
import time

import pytest

from medrival.core.errors import DataError
from medrival.store import LeaseKeeper, ResultStore, new_owner
from test_store import make_predictions, make_record

CELLS = [f"cell{i:02d}" for i in range(50)]


def _claim_all(root: str, seed: int, start, out) -> None:
    store = ResultStore(root)
    owner = new_owner()
    order = CELLS[:]
    random.Random(seed).shuffle(order)
    start.wait()
    out.put((owner, [cell for cell in order if store.claim(cell, owner, 60)]))


def test_two_processes_claim_each_cell_exactly_once(tmp_path):
    ResultStore(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(str(tmp_path), seed, start, out)) for seed in (1, 2)]
    for proc in procs:
        proc.start()
    time.sleep(1.0)
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    (owner_a, won_a), (owner_b, won_b) = results
    assert not set(won_a) & set(won_b) and sorted(won_a + won_b) == CELLS
    leases = ResultStore(tmp_path).active_leases()
    assert {lease.cell_id: lease.owner for lease in leases} == {**{c: owner_a for c in won_a},
                                                                **{c: owner_b for c in won_b}}


def test_expired_lease_is_taken_over_and_a_live_one_is_not(tmp_path):
    store = ResultStore(tmp_path)
    assert store.claim("c", "hostx:1:a", 0.2)
    assert not store.claim("c", "hostx:2:b", 60)
    time.sleep(0.3)
    assert store.claim("c", "hostx:2:b", 60)
    assert [lease.owner for lease in store.active_leases()] == ["hostx:2:b"]
    assert store.heartbeat("hostx:1:a", 60) == 0  # the old owner lost it


def test_dead_process_of_this_host_loses_its_lease_at_once(tmp_path):
    import socket
    store = ResultStore(tmp_path)
    assert store.claim("c", f"{socket.gethostname()}:{2**22 + 1}:dead", 600)
    assert store.claim("c", new_owner(), 60)


def test_heartbeat_keeps_a_lease_alive_past_its_first_expiry(tmp_path):
    store = ResultStore(tmp_path)
    owner = new_owner()
    with LeaseKeeper(store, owner, 0.6) as keeper:
        assert store.claim("c", owner, 0.6)
        time.sleep(1.5)
        assert not store.claim("c", "other:1:x", 60)
        assert keeper.beats >= 2 and keeper.error is None
    assert store.active_leases() == []  # released on exit
    assert store.claim("c", "other:1:x", 60)


def test_save_releases_the_lease_and_a_done_cell_cannot_be_claimed(tmp_path):
    store = ResultStore(tmp_path)
    owner = new_owner()
    assert store.claim("clip__toy__linear__s0", owner, 60)
    store.save(make_record(), make_predictions(), owner=owner)
    assert store.active_leases() == []
    assert not store.claim("clip__toy__linear__s0", "other:1:x", 60)
    (store.paths.predictions_dir / "clip__toy__linear__s0.parquet").unlink()  # damaged: may be redone
    assert store.claim("clip__toy__linear__s0", "other:1:x", 60)
    assert store.release("clip__toy__linear__s0", "other:1:x") and store.active_leases() == []


def test_bad_lease_arguments_say_what_to_pass(tmp_path):
    store = ResultStore(tmp_path)
    with pytest.raises(DataError, match="positive number of seconds"):
        store.claim("c", new_owner(), 0)
    with pytest.raises(DataError, match="non-empty string"):
        store.claim("c", "", 10)
