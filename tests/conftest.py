"""Shared fixtures. ``shared_path`` finds ../shared beside the checkout (CI always has it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"

torch.set_num_threads(min(2, torch.get_num_threads()))


def shared_path(relative: str) -> Path:
    """A file under ../shared, or skip the test naming the missing file."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"needs {path} (the shared/ folder beside the checkout), which is missing")
    return path


@pytest.fixture(autouse=True)
def sganon_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty SGANON_HOME: no test reads or writes the user's weight cache."""
    home = tmp_path_factory.mktemp("sganon_home")
    monkeypatch.setenv("SGANON_HOME", str(home))
    return home


@pytest.fixture
def shared():
    return shared_path
