"""The theory notebooks (jupytext percent scripts) run top to bottom in quick mode and write figures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["two_timescales", "limit_vs_discrete", "regime_map", "network_limit"])
def test_notebook_runs(name, tmp_path):
    env = dict(os.environ, FLATTER_QUICK="1", FLATTER_OUT=str(tmp_path), MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(ROOT / "theory" / f"{name}.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_notebooks_open_as_notebooks():
    jupytext = pytest.importorskip("jupytext")
    for path in (ROOT / "theory").glob("*.py"):
        nb = jupytext.read(path)
        assert sum(cell.cell_type == "code" for cell in nb.cells) >= 3, path
