"""The code base stays ruff clean (ruff is part of the test extra)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    dirs = [d for d in ("flatter", "tests", "benchmarks", "experiments", "theory") if (ROOT / d).exists()]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *dirs], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_string_holds_a_control_character():
    """TeX in a non-raw docstring turns into control bytes (``\\theta`` is a tab, ``\\beta`` a backspace): every
    string constant of the code holds printable text and newlines only."""
    import ast

    found = []
    for folder in ("flatter", "tests", "benchmarks", "experiments", "theory"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    bad = sorted({hex(ord(c)) for c in node.value if ord(c) < 32 and c != "\n"})
                    if bad:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {bad}")
    assert not found, found
