"""Users' own rules are listed, explained, selected and judged like ours (docs/plugins.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldebug.catalogue import CATALOGUE
from modeldebug.cli import main
from modeldebug.rules import RULES
from modeldebug.catalogue import plugins as plugins_mod

DOC_EXAMPLE = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
PLUGIN = re.search(r"`acme_rules.py`.*?```python\n(.*?)```", DOC_EXAMPLE, re.S).group(1)  # type: ignore[union-attr]

TRAIN = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=float(sys.argv[1]))
    x, y = torch.randn(64, 4), 3 * torch.randn(64, 1)
    for step in range(30):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
""")


@pytest.fixture
def isolated_catalogue() -> Iterator[None]:
    """Plugins loaded by a test are forgotten afterwards (the catalogue is process-wide)."""
    specs, options = dict(CATALOGUE._specs), dict(CATALOGUE._options)
    rules, files = dict(RULES), dict(plugins_mod._loaded_files)
    yield
    CATALOGUE._specs.clear(), CATALOGUE._specs.update(specs)
    CATALOGUE._options.clear(), CATALOGUE._options.update(options)
    RULES.clear(), RULES.update(rules)
    plugins_mod._loaded_files.clear(), plugins_mod._loaded_files.update(files)


def test_the_documented_plugin_is_listed_explained_selected_and_judged(
        isolated_catalogue: None, capsys: pytest.CaptureFixture[str]) -> None:
    Path("acme_rules.py").write_text(PLUGIN)
    Path("train.py").write_text(TRAIN)
    assert main(["rules", "--rules", "acme_rules.py", "--family", "plugin"]) == 0
    assert "ACME001" in capsys.readouterr().out
    assert main(["explain", "ACME001", "--rules", "acme_rules.py"]) == 0
    assert "## Known problems" in capsys.readouterr().out
    # lr 1e-4: the loss stays near 9, far over the budget of 0.5
    assert main(["run", "--rules", "acme_rules.py", "--db", "r.db", "--json", "a.json", "-q", "train.py", "1e-4"]) == 0
    findings = json.loads(Path("a.json").read_text())["findings"]
    acme = [f for f in findings if f["code"] == "ACME001"]
    assert acme and acme[0]["kind"] == "loss_over_budget" and acme[0]["evidence"]["budget"] == 0.5
    assert main(["report", "r.db", "--rules", "acme_rules.py", "--select", "ACME", "--json", "b.json", "-q"]) == 0
    assert [f["code"] for f in json.loads(Path("b.json").read_text())["findings"]] == ["ACME001"]
    assert main(["report", "r.db", "--rules", "acme_rules.py", "--ignore", "ACME", "--json", "c.json", "-q"]) == 0
    assert "ACME001" not in Path("c.json").read_text()


def test_a_healthy_run_is_within_budget_and_the_option_can_be_set(isolated_catalogue: None) -> None:
    import modeldebug as md
    from modeldebug.plugins import load_rules

    Path("acme_rules.py").write_text(PLUGIN)
    Path("train.py").write_text(TRAIN)
    assert main(["run", "--rules", "acme_rules.py", "--db", "r.db", "-q", "train.py", "1e-4"]) == 0
    load_rules("acme_rules.py")
    record = md.Record.open("r.db")
    assert "loss_over_budget" in md.Report.from_record(record).kinds()
    lenient = md.DebuggingConfig(thresholds={"acme_loss_budget": 1e6})
    assert "loss_over_budget" not in md.Report.from_record(record, lenient).kinds()


@pytest.mark.parametrize("code, message", [("GRD900", "belongs to modeldebug"), ("ACME001x", "not a family prefix")])
def test_a_plugin_cannot_take_our_codes(isolated_catalogue: None, capsys: pytest.CaptureFixture[str],
                                        code: str, message: str) -> None:
    Path("bad.py").write_text(PLUGIN.replace("ACME001", code))
    assert main(["rules", "--rules", "bad.py"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "bad.py" in err[0]


@pytest.mark.slow
def test_an_installed_entry_point_is_loaded_and_a_broken_one_only_warns(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "acme_rules-0.1.dist-info").mkdir(parents=True)
    (site / "acme_rules-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-rules\nVersion: 0.1\n")
    (site / "acme_rules-0.1.dist-info" / "entry_points.txt").write_text(
        "[modeldebug.rules]\nacme = acme_rules\nbroken = no_such_module_here\n")
    (site / "acme_rules.py").write_text(PLUGIN)
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-m", "modeldebug", "rules", "--family", "plugin"], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ACME001" in r.stdout
    assert "'broken'" in r.stderr and "skipped" in r.stderr
