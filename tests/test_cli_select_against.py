"""`report --against good.json --select INV...`: invariant codes are selectable when invariants are judged;
without `--against` the same selection is still one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compare_runs import md, train


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("select-against")
    out = {name: train(root, name, *args) for name, args in
           {"seed0": ("--seed", "0"), "seed1": ("--seed", "1"), "broken": ("--no-zero-grad",)}.items()}
    code, _, err = md("learn", str(out["seed0"]), str(out["seed1"]), "-o", str(root / "good.json"))
    assert code == 0, err
    return out | {"good": root / "good.json"}


def _codes(runs: dict[str, Path], *extra: str) -> list[str]:
    code, out, err = md("report", str(runs["broken"]), "--against", str(runs["good"]), "--json", "-", "-q", *extra)
    assert code == 0, err
    found = json.loads(out)["findings"]
    return [c for f in found for c in (f["code"], *(s["code"] for s in f["evidence"].get("symptoms", [])))]


def test_select_names_only_invariants_with_against(runs: dict[str, Path]) -> None:
    everything = _codes(runs)
    assert "INV004" in everything and any(not c.startswith("INV") for c in everything), everything
    assert _codes(runs, "--select", "INV004") == ["INV004"]  # was: "those codes are found by `--against`"
    inv = _codes(runs, "--select", "INV")
    assert "INV004" in inv and all(c.startswith("INV") for c in inv), inv
    mixed = _codes(runs, "--select", "INV004,LOP001")  # rules and invariants together still work
    assert "INV004" in mixed and set(mixed) <= {"INV004", "LOP001"}, mixed


def test_select_of_invariants_without_against_is_one_clear_error(runs: dict[str, Path]) -> None:
    code, _, err = md("report", str(runs["broken"]), "--select", "INV004")
    assert code == 2 and "--against" in err and "Traceback" not in err, err


def test_run_against_with_a_select_of_invariants(runs: dict[str, Path], tmp_path: Path) -> None:
    from compare_runs import SCRIPT

    db = tmp_path / "run.db"
    code, out, err = md("run", "-q", "--no-progress", "--db", str(db), "--against", str(runs["good"]),
                        "--select", "INV004", "--json", "-", str(SCRIPT), "--no-zero-grad")
    assert code == 0, err
    assert [f["code"] for f in json.loads(out)["findings"]] == ["INV004"]
