"""Shared fixtures: a seeded generator, a private disk cache, and one finished digits run. What
test modules import from each other (data writers, quick options) is in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core: one thread each
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch) -> None:
    """Disk caches of decoded images go to a temporary folder, never the user's ~/.cache."""
    monkeypatch.setenv("RESNETS_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """One short finished training run on the bundled digits, shared by inference tests."""
    from resnets import train

    run = tmp_path_factory.mktemp("runs") / "digits"
    train(out=str(run), epochs=3, progress=False, tensorboard=False, seed=0)
    return run
