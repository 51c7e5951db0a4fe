"""One loader for user code on the command line: module:name and file.py:name."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldebug.errors import BadInputError
from modeldebug.loader import load_object


def test_a_py_file_can_import_its_neighbours(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers_xq1.py").write_text("def build():\n    return 'built'\n")
    (tmp_path / "lib" / "entry_xq1.py").write_text("from helpers_xq1 import build\n\nclass Bot:\n"
                                                   "    def answer(self, prompt):\n        return prompt\n\nbot = Bot()\n")
    assert load_object(f"{tmp_path}/lib/entry_xq1.py:build", "--model")() == "built"
    assert load_object("lib/entry_xq1.py:bot.answer", "--model")("hi") == "hi"  # relative path, dotted name
    with pytest.raises(BadInputError, match="method of class Bot.*bot = Bot\\(\\)"):
        load_object("lib/entry_xq1.py:Bot.answer", "--model")


@pytest.mark.parametrize(("spec", "message"), [
    ("no_colon", "expected MODULE:NAME"),
    ("missing_xq1.py:f", "no such file 'missing_xq1.py'"),
    ("no_such_module_xq1:f", "cannot import 'no_such_module_xq1'"),
    ("broken_xq1.py:f", "importing 'broken_xq1.py' raised ZeroDivisionError"),
    ("ok_xq1.py:nope", "has no attribute 'nope'"),
])
def test_bad_specs_name_the_problem(spec: str, message: str) -> None:
    Path("broken_xq1.py").write_text("1 / 0\n")
    Path("ok_xq1.py").write_text("x = 1\n")
    with pytest.raises(BadInputError, match=message) as info:
        load_object(spec, "--model")
    assert str(info.value).startswith(f"--model {spec!r}")


def test_a_local_module_does_not_shadow_an_installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.machinery
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "onnxruntime.py").write_text("raise ImportError('the local stand-in, not onnxruntime')\n")
    (tmp_path / "proj" / "helpers_xq3.py").write_text("VALUE = 7\n")
    (tmp_path / "proj" / "nets_xq3.py").write_text("import helpers_xq3\n\ndef build():\n    return helpers_xq3.VALUE\n")
    assert load_object(f"{tmp_path}/proj/nets_xq3.py:build", "--torch")() == 7  # its neighbours still import
    # What `import onnxruntime` would find now, by sys.path order alone (sys.modules left out of it):
    found = importlib.machinery.PathFinder.find_spec("onnxruntime")
    assert found is not None and found.origin is not None
    assert Path(found.origin).resolve() != (tmp_path / "proj" / "onnxruntime.py").resolve()
    assert sys.path[-1] == str((tmp_path / "proj").resolve())


def test_a_file_named_like_an_installed_module_does_not_replace_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "json.py").write_text("def build():\n    return 'mine'\n")
    assert load_object(f"{tmp_path}/json.py:build", "--model")() == "mine"
    assert sys.modules["json"] is json
    sys.modules.pop("modeldebug_user_json", None)


@pytest.mark.parametrize(("source", "shown"), [
    ("import sys\nsys.exit(3)\n", "sys.exit(3)"),
    ("raise SystemExit('usage: train.py --lr LR')\n", "sys.exit('usage: train.py --lr LR')"),
    ("import argparse\nargparse.ArgumentParser().parse_args(['--nope'])\n", "sys.exit(2)"),
])
def test_system_exit_while_importing_is_one_bad_input_line(source: str, shown: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from modeldebug.loader import UserCodeExit

    Path("exits_xq3.py").write_text(source)
    with pytest.raises(UserCodeExit) as info:
        load_object("exits_xq3.py:build", "--model")
    assert info.value.message == (f"--model 'exits_xq3.py:build': importing 'exits_xq3.py' called {shown} (raised "
                                  "SystemExit); user code must return or raise an exception, not exit the program")
    assert "exits_xq3" not in __import__("sys").modules
    capsys.readouterr()  # argparse printed its own usage first
