"""The project journal: every run and watch() session appended, listed, named; concurrent and failure-proof."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import torch
from compare_runs import SCRIPT, md, project, train
from torch import nn

import modeldebug as md_
from modeldebug.journal import Journal
from modeldebug.journal.git import git_state
from modeldebug.journal.verdict import reference


@pytest.fixture
def shared(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return project(tmp_path_factory)


@pytest.fixture(autouse=True)
def _no_env_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELDEBUG_JOURNAL", raising=False)


def test_every_run_is_journaled_with_what_identifies_it(shared) -> None:  # type: ignore[no-untyped-def]
    with Journal(shared.journal) as j:
        entries = j.entries()
        assert [e.argv[1:] for e in entries][:2] == [["--init-std", "0.6"], ["--no-zero-grad"]]  # newest first
        by_record = {Path(e.record).name: e for e in entries}
        lr, seed1 = by_record["lr.db"], by_record["seed1.db"]
        assert len({e.uid for e in entries}) == len(entries) == 7 and all(len(e.uid) == 8 for e in entries)
        hyper = lr.facts["hyperparameters"]
        assert hyper["optimizers"][0]["type"] == "Adam" and hyper["optimizers"][0]["groups"][0]["lr"] == 0.3
        assert hyper["batch_size"] == 32
        assert seed1.facts["seed"] == {"torch": 1, "set_by_script": True}
        assert lr.facts["script_sha256"] == seed1.facts["script_sha256"]
        assert lr.facts["versions"]["torch"] == torch.__version__ and lr.facts["device"] == "cpu"
        assert lr.facts["data"]["inputs"][0]["shape"] == [20] and lr.facts["data"]["targets"][0]["classes"] == 3
        assert lr.steps == 60 and lr.status == "finished" and lr.exit_code == 0
        assert "opt.zero_grad()" in (j.source(lr) or "")


def test_history_lists_newest_first_with_the_top_finding_and_the_reference(shared, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(shared.root)
    code, out, _ = md("history", "-n", "7")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("id") and "--init-std 0.6" in lines[1] and "--seed 0" in lines[7]
    lr_line = next(ln for ln in lines if "--lr 0.3" in ln)
    assert "LRN001" in lr_line  # the top finding, computed once and kept in the journal
    (ref,) = [ln for ln in lines[1:8] if " * " in ln]  # the default reference: the newest clean run
    assert ref.endswith("clean") and lines.index(ref) == min(i for i, ln in enumerate(lines) if ln.endswith("clean"))
    assert lines[-1].startswith("(* the default reference")
    from modeldebug.compare.render import render_history

    rows = [{**json.loads(md("history", "--json")[1])[i], "reference": False} for i in (3, 4)]  # no reference shown
    assert render_history(rows).splitlines()[-1].endswith("is not among these)")
    code, out, _ = md("history", "--json")
    rows = json.loads(out)
    assert code == 0 and rows[0]["steps"] == 60 and {r["top"] for r in rows} >= {"clean"}


def test_mark_names_a_run_and_good_becomes_the_reference(tmp_path: Path, shared, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    journal = tmp_path / "j.db"
    monkeypatch.setenv("MODELDEBUG_JOURNAL", str(journal))
    code, _, err = md("mark", str(shared.runs["seed0"]))  # not journaled there yet: added, then named
    assert code == 0 and "is now 'good'" in err
    assert md("mark", str(shared.runs["seed1"]), "baseline")[0] == 0
    with Journal(journal) as j:
        good = j.named("good")
        assert good is not None and Path(good.record) == shared.runs["seed0"].resolve()
        assert reference(j).uid == good.uid
        uid = j.named("baseline").uid
    assert md("mark", uid[:5], "good")[0] == 0  # a name moves; a unique id prefix names a run
    with Journal(journal) as j:
        assert j.named("good").uid == uid and j.named("baseline").uid == uid
    code, _, err = md("mark", "nosuchrun")
    assert code == 2 and "no run 'nosuchrun'" in err and err.count("\n") == 1
    code, _, err = md("mark", uid, "last")
    assert code == 2 and "cannot be used" in err


def test_marking_a_run_with_a_serious_finding_good_warns(tmp_path: Path, shared, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELDEBUG_JOURNAL", str(tmp_path / "j.db"))
    code, _, err = md("mark", str(shared.runs["no_zero_grad"]))  # the rules find LOP001 (high) in it
    assert code == 0 and "is now 'good'" in err and "warning: it has a high finding (LOP001" in err
    code, _, err = md("mark", str(shared.runs["no_zero_grad"]), "broken")  # another name: no judgement
    assert code == 0 and "warning" not in err
    code, _, err = md("mark", str(shared.runs["seed0"]))  # its healthy twin
    assert code == 0 and "warning" not in err


def test_history_without_a_journal_says_so_in_one_line() -> None:
    code, _, err = md("history")
    assert code == 2 and "no journal at" in err and err.count("\n") == 1


def test_a_watch_session_is_journaled_and_an_in_memory_one_is_not(tmp_path: Path) -> None:
    torch.manual_seed(7)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for db in (":memory:", str(tmp_path / "w.db")):
        with md_.watch(model, optimizer=opt, db=db):
            for _ in range(3):
                opt.zero_grad()
                model(torch.randn(8, 4)).pow(2).mean().backward()
                opt.step()
    with Journal(tmp_path / ".modeldebug" / "journal.db") as j:
        (entry,) = j.entries()
    assert entry.mode == "watch" and entry.steps == 3 and entry.facts["seed"]["torch"] == 7
    assert entry.facts["hyperparameters"]["optimizers"][0]["type"] == "SGD"


def test_a_journal_that_cannot_be_written_is_one_warning_and_the_run_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "blocked").mkdir()
    monkeypatch.setenv("MODELDEBUG_JOURNAL", str(tmp_path / "blocked"))  # a folder, not a file
    with caplog.at_level(logging.WARNING, logger="modeldebug"):
        db = train(tmp_path, "run", "--steps", "12")
    assert db.is_file()
    warnings = [r for r in caplog.records if "journal" in r.getMessage()]
    assert len(warnings) == 1 and "not added to the journal" in warnings[0].getMessage()
    monkeypatch.setenv("MODELDEBUG_JOURNAL", "off")
    train(tmp_path, "quiet", "--steps", "12")
    assert not (tmp_path / ".modeldebug").exists()


def _append_many(path: str, n: int) -> None:
    from modeldebug.journal import Journal as J

    for i in range(n):
        with J(path, create=True) as j:
            j.append({"mode": "run", "script": "x.py", "argv": ["x.py", str(i)], "steps": i}, record=None)


def test_concurrent_appends_from_several_processes_all_land(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.db")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, 15)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with Journal(path) as j:
        entries = j.entries()
    assert len(entries) == 60 and len({e.uid for e in entries}) == 60
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_git_state_names_the_commit_and_hashes_the_uncommitted_diff(tmp_path: Path) -> None:
    assert git_state(tmp_path) is None  # not a repository: nothing, quietly
    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text(SCRIPT.read_text())

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    clean = git_state(script)
    assert clean == {"commit": git("rev-parse", "HEAD"), "diff_sha256": None, "dirty": False, "files": []}
    script.write_text(script.read_text().replace("opt.zero_grad()", "pass"))
    dirty = git_state(script)
    assert dirty["commit"] == clean["commit"] and dirty["dirty"] and dirty["files"] == ["train.py"]
    assert len(dirty["diff_sha256"]) == 64
    # a run of that script records it in the journal
    train(repo, "run", "--steps", "12", script=script)
    with Journal(repo / ".modeldebug" / "journal.db") as j:
        assert j.entries()[0].facts["git"] == dirty


def test_a_damaged_or_foreign_journal_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "j.db").write_text("not a journal")
    code, _, err = md("history", "--journal", str(tmp_path / "j.db"))
    assert code == 2 and "not a modeldebug journal" in err and err.count("\n") == 1
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)")
    code, _, err = md("history", "--journal", str(tmp_path / "other.db"))
    assert code == 2 and "not a modeldebug journal" in err


def test_a_session_whose_code_changes_folder_is_journaled_where_it_started(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    project_dir, elsewhere = tmp_path / "project", tmp_path / "outputs"
    project_dir.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(project_dir)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with md_.watch(model, optimizer=opt, db=str(tmp_path / "w.db")):
        os.chdir(elsewhere)  # the training code moves into its output folder
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(8, 4)).pow(2).mean().backward()
            opt.step()
    assert (project_dir / ".modeldebug" / "journal.db").exists()
    assert not (elsewhere / ".modeldebug").exists()


def test_marking_a_damaged_record_is_one_line_and_leaves_no_journal_behind(tmp_path: Path) -> None:
    bad = tmp_path / "run.db"
    bad.write_bytes(b"not a record" * 100)
    journal = tmp_path / "j" / "journal.db"
    journal.parent.mkdir()
    code, _, err = md("mark", str(bad), "good", "--journal", str(journal))
    assert code == 2 and "run.db" in err and "Traceback" not in err
    assert not journal.exists()
