"""Second first-hour audit (the workflows beyond `run`): what a new user met, each fixed and kept fixed."""

from __future__ import annotations

import io

from modeldebug.catalogue import CATALOGUE
from modeldebug.report.catalogue import print_rules


def test_rules_in_a_pipe_is_one_line_per_code_for_grep() -> None:
    buf = io.StringIO()  # not a terminal, as `modeldebug rules | grep nonfinite`
    print_rules(file=buf)
    lines = buf.getvalue().splitlines()
    specs = list(CATALOGUE)
    assert len(lines) == len(specs) + len({s.family for s in specs})  # a header per family, a line per code
    for s in specs:
        line = next(ln for ln in lines if ln.startswith(s.code + " "))
        assert s.kind in line and line.endswith(s.summary)  # the summary whole, not folded into a box
    assert not any("│" in ln or "┃" in ln for ln in lines)
    buf = io.StringIO()
    print_rules(family="invariant", file=buf)
    assert buf.getvalue().startswith("# Invariants from healthy runs (10)\n") and "GRD001" not in buf.getvalue()
