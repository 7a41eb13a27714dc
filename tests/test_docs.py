"""The docs site builds from the docstrings with warnings as errors, and documents every public name."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_site_builds_strict_and_holds_the_api(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for page, names in {
        "transforms": ["flatter.transforms.heavy_ball", "flatter.transforms.label_noise_batch"],
        "sweeps": ["flatter.sweep.summarize", "flatter.sweep.SweepResults", "flatter.figures.scaling_figure"],
        "valley-and-limit": ["flatter.valley.gauss_newton_step", "flatter.limit.label_noise_flow"],
        "theory": [],
    }.items():
        html = (tmp_path / page / "index.html").read_text()
        for name in names:
            assert f'id="{name}"' in html, (page, name)


def test_every_package_exports_exactly_its_explicit_re_exports():
    """``__all__`` (what the docs and ``import *`` see) lists the ``from ._x import y as y`` names, no more."""
    for init in sorted((ROOT / "flatter").glob("*/__init__.py")):
        tree = ast.parse(init.read_text())
        reexported = [a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names if a.asname == a.name]
        listed = [
            ast.literal_eval(n.value)
            for n in tree.body
            if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)
        ]
        if not reexported:
            continue
        assert listed and sorted(listed[0]) == sorted(reexported), init
