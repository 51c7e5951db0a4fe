"""How a `watch()` session that is left by an exception records its end: as `modeldebug run` records a
script that ends the same way (Ctrl-C is an interruption, `sys.exit(n)` a run that finished with n)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import modeldebug as md


@pytest.mark.parametrize(("exc", "status", "code"), [
    (None, "finished", 0),
    (KeyboardInterrupt(), "interrupted", 130),
    (SystemExit(0), "finished", 0),
    (SystemExit(3), "finished", 3),
    (SystemExit("bye"), "finished", 1),
    (ValueError("boom"), "crashed", 1),
], ids=["normal", "ctrl-c", "exit-0", "exit-3", "exit-message", "crash"])
def test_the_record_says_how_the_session_ended(exc: BaseException | None, status: str, code: int) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    session = md.watch(model, opt, db=":memory:")
    try:
        with session:
            for _ in range(3):
                opt.zero_grad()
                model(torch.randn(8, 4)).pow(2).mean().backward()
                opt.step()
            if exc is not None:
                raise exc
    except BaseException as raised:  # noqa: BLE001 - the test re-checks what was raised
        assert raised is exc
    meta = session.record.meta
    assert (meta["status"], meta["exit_code"]) == (status, code)
    crashes = [f for f in session.report().findings if f.category == "runtime"]
    assert bool(crashes) == (status == "crashed")
