"""Threads for the free cores (threads.py), decided from a simulated load."""

from __future__ import annotations

import pytest
import torch

from resnets import threads


@pytest.fixture(autouse=True)
def keep_torch_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    yield
    torch.set_num_threads(before)


def load(monkeypatch, cores: int, busy: set[int]):
    """A machine with `cores` cores where other processes keep `busy` at 90 % (the others
    idle at 5 %) between the two reads of /proc/stat."""
    reads = iter([0, 1])

    def cpu_times():
        later = next(reads)
        return {c: (later * (90 if c in busy else 5), later * 100) for c in range(cores)}

    monkeypatch.setattr(threads, "cpu_times", cpu_times)
    monkeypatch.setattr(threads, "allowed_cores", lambda: list(range(cores)))


def test_a_busy_core_gets_no_thread_and_the_choice_is_said(monkeypatch):
    load(monkeypatch, 4, busy={1, 3})
    choice = threads.choose_threads(None, torch.device("cpu"))
    assert choice.threads == 2 and torch.get_num_threads() == 2
    assert choice.note.startswith("threads: 2 of 4 cores, as 2 were busy")


def test_idle_cores_keep_torchs_choice_without_a_note(monkeypatch):
    load(monkeypatch, 4, busy=set())
    before = torch.get_num_threads()
    choice = threads.choose_threads(None, torch.device("cpu"))
    assert (choice.threads, choice.note) == (before, None)


def test_every_core_busy_still_leaves_one_thread(monkeypatch):
    load(monkeypatch, 2, busy={0, 1})
    assert threads.choose_threads(None, torch.device("cpu")).threads == 1


def test_threads_flag_and_omp_num_threads_decide_instead(monkeypatch):
    load(monkeypatch, 4, busy={0, 1, 2})
    assert threads.choose_threads(3, torch.device("cpu")) == threads.ThreadChoice(3, None)
    assert torch.get_num_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    assert threads.choose_threads(None, torch.device("cpu")) == threads.ThreadChoice(2, None)


def test_the_real_proc_stat_reads_where_there_is_one():
    times = threads.cpu_times()
    if times is None:
        pytest.skip("no /proc/stat on this system")
    assert set(threads.allowed_cores()) <= set(times)
    assert all(0 <= busy <= total for busy, total in times.values())


def test_deterministic_runs_keep_the_count_and_say_the_busy_core(monkeypatch):
    load(monkeypatch, 2, busy={0})
    torch.set_num_threads(2)
    choice = threads.choose_threads(None, torch.device("cpu"), fixed=True)
    assert choice.threads == 2 and torch.get_num_threads() == 2
    assert "--deterministic keeps the count" in choice.note and "--threads 1 " in choice.note


def test_the_cli_presets_omp_num_threads_before_torch_loads(monkeypatch):
    import types

    load(monkeypatch, 2, busy={1})
    monkeypatch.setenv("OMP_NUM_THREADS", "")  # unset, and restored after the test
    monkeypatch.setattr(threads, "sys", types.SimpleNamespace(modules={}))  # no torch yet
    monkeypatch.setattr(threads, "_preset", None)
    threads.preset_threads()
    assert threads.os.environ["OMP_NUM_THREADS"] == "1"
    torch.set_num_threads(1)  # as PyTorch reads OMP_NUM_THREADS when it loads
    choice = threads.choose_threads(None, torch.device("cpu"))
    assert choice.threads == 1 and choice.note.startswith("threads: 1 of 2 cores, as 1 was busy")


def test_no_preset_once_torch_is_loaded(monkeypatch):
    load(monkeypatch, 2, busy={1})
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    threads.preset_threads()  # torch is loaded in this process: it would change nothing
    assert threads.os.environ["OMP_NUM_THREADS"] == ""
