"""The code base stays ruff clean (ruff is part of the test extra)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    dirs = [d for d in ("flatter", "tests", "benchmarks", "experiments", "theory") if (ROOT / d).exists()]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *dirs], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
