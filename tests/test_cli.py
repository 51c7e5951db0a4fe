"""The `modeldebug` command, run as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modeldebug.cli import main
from modeldebug.demos import DEMOS

PY = sys.executable


def md(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "modeldebug", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


TRAIN = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    print("argv", sys.argv[1:], "name", __name__)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 4); y = x.sum(1, keepdim=True)
    for step in range(int(sys.argv[sys.argv.index("--steps") + 1])):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    print(f"final {loss.item():.6f}")
    if "--fail" in sys.argv:
        sys.exit(3)
""")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    p = tmp_path / "train.py"
    p.write_text(TRAIN)
    return p


def test_run_behaves_exactly_like_python(script: Path, tmp_path: Path) -> None:
    plain = subprocess.run([PY, str(script), "--steps", "30"], capture_output=True, text=True, cwd=tmp_path)
    watched = md("run", "--json", "out.json", "--db", "run.db", "--", str(script), "--steps", "30", cwd=tmp_path)
    assert watched.returncode == plain.returncode == 0
    assert watched.stdout == plain.stdout  # same argv, __main__, output, and the same final loss
    assert "argv ['--steps', '30'] name __main__" in watched.stdout
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["version"] == 1 and report["run"]["steps"] == 30 and report["run"]["exit_code"] == 0
    assert [f for f in report["findings"] if f["severity"] != "low"] == []
    assert "No problems found" in watched.stderr


def test_run_keeps_argv_0_as_typed_and_main_as_python_does(tmp_path: Path) -> None:
    """`python train.py` sees sys.argv[0] == "train.py" (an absolute __file__), and a class the script
    defines pickles through __main__: so does the script under `modeldebug run`."""
    (tmp_path / "s.py").write_text(textwrap.dedent("""
        import os, pickle, sys
        class Sample:
            pass
        print(sys.argv, os.path.isabs(__file__), __name__, type(pickle.loads(pickle.dumps(Sample()))).__name__)
    """))
    plain = subprocess.run([PY, "s.py", "a"], capture_output=True, text=True, cwd=tmp_path)
    watched = md("run", "-q", "--no-progress", "--db", "run.db", "--", "s.py", "a", cwd=tmp_path)
    assert watched.stdout == plain.stdout == "['s.py', 'a'] True __main__ Sample\n"


def test_run_passes_the_scripts_exit_code_through(script: Path, tmp_path: Path) -> None:
    r = md("run", str(script), "--steps", "5", "--fail", cwd=tmp_path)
    assert r.returncode == 3
    assert list((tmp_path / ".modeldebug" / "runs").glob("*-train.db"))  # the default record location


def test_a_crashing_script_gets_its_traceback_and_a_diagnosis(tmp_path: Path) -> None:
    r = md("run", "--json", "-", "-q", str(Path(__file__).parents[1] / "src/modeldebug/demos/shape_crash.py"), cwd=tmp_path)
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "mat1 and mat2 shapes cannot be multiplied" in r.stderr
    report = json.loads(r.stdout)
    top = report["findings"][0]
    assert top["kind"] == "shape_mismatch" and top["location"] == "7" and top["category"] == "runtime"
    assert "400" in top["recommendations"][0]["implementation"]


def test_report_re_analyses_a_stored_run_and_fail_on_sets_the_exit_code(tmp_path: Path) -> None:
    demo = Path(__file__).parents[1] / "src/modeldebug/demos/dead_relu.py"
    assert md("run", "-q", "--db", "run.db", str(demo), "--steps", "40", cwd=tmp_path).returncode == 0
    r = md("report", "run.db", "--json", "-", "-q", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["findings"][0]["kind"] == "dead_activations"
    assert md("report", "run.db", "--fail-on", "high", "-q", cwd=tmp_path).returncode == 1
    assert md("report", "run.db", "--fail-on", "high", "-q", "--select", "NUM,RUN", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    (["run", "no_such_script.py"], "no training script at 'no_such_script.py'"),
    (["report", "missing.db"], "no run record at 'missing.db'"),
    (["report", "junk.db"], "not a modeldebug run record"),
    (["explain", "XYZ123"], "no rule 'XYZ123'"),
    (["run", "--level", "extreme", "x.py"], "invalid choice: 'extreme'"),
    (["run", "--select", "NOPE", "x.py"], "no rule matches 'NOPE'"),
    (["report"], "the following arguments are required"),
])
def test_bad_input_gets_one_line_and_exit_code_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "junk.db").write_text("not sqlite")
    (tmp_path / "x.py").write_text("print('should not run')\n")
    r = md(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "should not run" not in r.stdout


def test_rules_lists_the_catalogue_and_explain_prints_the_docs() -> None:
    r = md("rules")
    assert r.returncode == 0 and "GRD001" in r.stdout and "dead_activations" in r.stdout
    e = md("explain", "dead_activations")
    assert e.returncode == 0 and "## Why is this bad?" in e.stdout and "ACT001" in e.stdout


def test_help_works_both_ways() -> None:
    assert md("--help").returncode == 0
    exe = Path(sys.executable).with_name("modeldebug")  # the console script pip installed
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "modeldebug" in r.stdout


def test_demo_lists_its_bugs_and_diagnoses_the_default_one(tmp_path: Path) -> None:
    listing = md("demo", "--list")
    assert all(name in listing.stdout for name in DEMOS)
    r = md("demo", "--json", "demo.json", cwd=tmp_path)
    assert r.returncode == 0
    top = json.loads((tmp_path / "demo.json").read_text())["findings"][0]
    assert top["kind"] == "dead_activations" and top["severity"] == "high"


def test_a_run_killed_with_sigkill_keeps_what_was_committed_and_report_reads_it(tmp_path: Path) -> None:
    import os
    import signal

    (tmp_path / "hang.py").write_text(textwrap.dedent("""
        import time
        import torch
        from torch import nn
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        x, y = torch.randn(32, 4), torch.randn(32, 1)
        for step in range(45):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        print("trained", flush=True)
        time.sleep(120)
    """))
    proc = subprocess.Popen([PY, "-m", "modeldebug", "run", "--db", "run.db", "hang.py"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "trained"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    r = md("report", "run.db", "--json", "-", "-q", cwd=tmp_path)
    assert r.returncode == 0
    assert json.loads(r.stdout)["run"]["steps"] >= 40  # flushed every 20 steps; the last partial batch may be lost


def test_docs_rules_md_is_generated_from_the_rules_themselves() -> None:
    from modeldebug.cli import rules_markdown

    docs = Path(__file__).parents[1] / "docs" / "rules.md"
    assert docs.read_text() == rules_markdown(), "regenerate with: modeldebug rules --markdown > docs/rules.md"


def test_explain_knows_behaviour_codes_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "BEH020"]) == 0
    assert capsys.readouterr().out.startswith("# BEH020 knows_nothing\n\n`knows-nothing`, category behaviour")
    assert main(["explain", "knows_nothing"]) == 0
    assert main(["explain", "ZZZ999"]) == 2


@pytest.mark.slow
def test_a_closed_pipe_is_not_an_error() -> None:
    proc = subprocess.run(f"{sys.executable} -m modeldebug rules --markdown | head -1", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout == "# The rule catalogue\n" and proc.stderr == ""


def test_run_json_to_stdout_stays_parseable_and_bad_outputs_fail_first(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "train_xq.py"
    script.write_text(textwrap.dedent("""
        import torch
        from torch import nn
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(5):
            opt.zero_grad()
            loss = model(torch.randn(8, 4)).pow(2).mean()
            loss.backward()
            opt.step()
            print("step", step)
    """))
    assert main(["run", "--json", "-", "-q", "--no-progress", str(script)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["run"]["steps"] == 5
    assert "step 4" in err  # the script's own output moved to stderr, not lost
    assert main(["run", "--json", f"{script}/report.json", str(script)]) == 2
    out, err = capsys.readouterr()
    assert "is a file, not a folder" in err and "step" not in out + err  # refused before training


def test_long_fixes_wrap_instead_of_being_cut() -> None:
    from modeldebug.report import Report
    from modeldebug.rules.base import Finding, Recommendation

    code = "nn.init.kaiming_normal_(model.get_submodule('encoder.layers.2').weight, nonlinearity='relu')  # END"
    f = Finding("ACT001", "dead_activations", "activation", "high", 0.9, "t", "d",
                recommendations=[Recommendation("fix", "re-init", code)])
    text = Report([f], {"script": "x"}).to_text(width=60)
    assert "# END" in text and "0 steps" not in text
