"""``flatter COMMAND --help`` states every preset's size and the wall time benchmarks/run_all.py measured for it."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from flatter import _cli
from flatter.drivers._about import MEASURED_TIMES, PRESET_KEYS

ROOT = Path(__file__).resolve().parents[1]


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        _cli.main([command, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # unwrapped


@pytest.mark.parametrize("command", sorted(PRESET_KEYS))
def test_every_preset_is_listed_with_its_size_and_its_time(command, capsys):
    text = _help(command, capsys)
    times = json.loads(MEASURED_TIMES.read_text())
    for problem, preset in PRESET_KEYS[command]:
        several = len({p for p, _ in PRESET_KEYS[command]}) > 1
        name = f"{problem} {preset}" if several else preset
        line = re.search(rf"  ?{re.escape(name)}: (.*?)(?= [\w-]+(?: \w+)?: |$)", text.split("presets (size;")[1])
        assert line is not None, f"{name} missing from `flatter {command} --help`"
        assert "runs" in line.group(1)
        record = times.get(f"{command} {problem} {preset}")
        if record is None:
            assert "not measured" in line.group(1)
        else:
            seconds = record["wall_seconds"]
            shown = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
            assert f"measured {shown} on {record['cpu']}" in line.group(1)


def test_the_sizes_are_the_presets_counted_by_hand(capsys):
    text = _help("scaling", capsys)
    # toy quick: (2 gammas x 4 etas x 2 variants + 5 gammas x 4 etas x 3 variants) x 32 seeds
    assert f"toy-valley quick: 2 parameters; {(2 * 4 * 2 + 5 * 4 * 3) * 32:,} runs in 2 sweeps" in text
    # matrix sensing quick: 5 gammas x 5 etas x 3 variants x 8 seeds
    assert f"matrix-sensing quick: d = 20, r = 2, n = 100; {5 * 5 * 3 * 8:,} runs," in text
    assert "fashion-mnist quick" not in text
    text = _help("fashion-mnist", capsys)
    assert "quick: MLP-6 width 128 on 2,000 training images; 4 gamma x 4 eta x 3 seeds = 48 runs" in text


def test_the_quoted_times_are_the_stored_measurements(monkeypatch):
    """measured_times.json is what run_all.py derives from benchmarks/results: nobody edited it by hand."""
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_all", run_all)  # dataclasses look their module up
    spec.loader.exec_module(run_all)
    stored = MEASURED_TIMES.read_text()
    try:
        run_all.write_measured_times()
        assert MEASURED_TIMES.read_text() == stored
    finally:
        MEASURED_TIMES.write_text(stored)
    names = {f.preset: f.name for f in run_all.FIGURES if f.preset}
    keys = {f"{command} {problem} {preset}" for command, pairs in PRESET_KEYS.items() for problem, preset in pairs}
    assert set(names) <= keys  # every measured preset is one --help lists
    for key, record in json.loads(stored).items():
        result = json.loads((ROOT / "benchmarks" / "results" / f"{names[key]}.json").read_text())
        assert record["wall_seconds"] == result["wall_seconds"] and record["commit"] == result["commit"]


def test_run_all_calls_a_tree_dirty_only_for_changes_it_did_not_write(monkeypatch):
    """Every entry after a run's first used to say "with uncommitted changes": the script's own RESULTS.md,
    stored entries and quoted times made the tree dirty. Those are not a change to the measured code; any
    other modified tracked file is."""
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_all", run_all)
    spec.loader.exec_module(run_all)
    own = "benchmarks/RESULTS.md\nbenchmarks/results/suite.json\nflatter/drivers/measured_times.json"
    monkeypatch.setattr(run_all, "_git", lambda *args: own)
    assert not run_all._uncommitted_changes()
    monkeypatch.setattr(run_all, "_git", lambda *args: own + "\nflatter/_compare.py")
    assert run_all._uncommitted_changes()
