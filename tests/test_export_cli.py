"""`modeldebug export RUN.db --to ...`: in-process, and once through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modeldebug.cli import main

from test_export_source import make_run


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("cli") / "dead.db")


def test_csv_export_prints_the_files_it_wrote(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(db), "--to", "csv", "--out", str(tmp_path / "t")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "t" / f"{n}.csv") for n in ("steps", "stats", "findings")]
    assert "ACT001" in (tmp_path / "t" / "findings.csv").read_text(encoding="utf-8")


def test_the_default_output_folder_is_named_after_the_run(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(db), "--to", "csv"]) == 0
    assert Path("dead-csv", "steps.csv").is_file()  # in the current directory (the test's own)


@pytest.mark.parametrize(("argv", "message"), [
    (["export", "missing.db", "--to", "csv"], "no run record at 'missing.db'"),
    (["export", "{db}", "--to", "csv", "--tracking-uri", "sqlite:///x.db"], "--tracking-uri is for --to mlflow"),
    (["export", "{db}", "--to", "csv", "--out", "{db}"], "is a file; give a directory"),
])
def test_bad_input_is_one_line_and_exit_code_2(db: Path, argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main([a.replace("{db}", str(db)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeldebug: ") and message in err and err.count("\n") == 1


def test_an_unknown_target_is_a_usage_error(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(db), "--to", "excel"])
    assert exit_info.value.code == 2 and "invalid choice: 'excel'" in capsys.readouterr().err


def test_a_missing_extra_says_which_pip_install_fixes_it(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    assert main(["export", str(db), "--to", "wandb", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "modeldebug: W&B export needs an optional dependency: pip install 'modeldebug[wandb]'\n"


@pytest.mark.slow
def test_the_entry_point_exports_parquet(db: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "modeldebug", "export", str(db), "--to", "parquet", "--out", "pq"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(Path("pq") / f"{n}.parquet") for n in ("steps", "stats", "findings")]
    assert all((tmp_path / "pq" / f"{n}.parquet").stat().st_size > 0 for n in ("steps", "stats", "findings"))
