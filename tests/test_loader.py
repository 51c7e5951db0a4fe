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
