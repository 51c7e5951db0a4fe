"""torch.compile under watching: no new warnings, no extra graphs or recompiles, the same losses.

A compiled model and a compiled loss are trained plainly and watched; dynamo's work is counted by
a backend that counts the graphs it is handed (one per compile, recompiles included) and by
``torch._dynamo.utils.counters`` (graph breaks), and every warning is captured.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch._dynamo
from torch import nn
from torch._dynamo.utils import counters

import modeldebug as md

# A batch size the model has not seen makes dynamo recompile once (dynamic shapes): that
# recompile is the model's own and must happen exactly as often when watched.
SIZES = [8, 8, 12, 8, 16, 8, 8]
_HAS_ANY_GLOBAL_HOOK = nn.modules.module._has_any_global_hook


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _train(backend: Any, *, watched: bool, user_hook: bool = False) -> dict[str, Any]:
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = Net()
    compiled = torch.compile(model, backend=backend)
    loss_of = torch.compile(lambda logits, y: nn.functional.cross_entropy(logits, y), backend=backend)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    handle = nn.modules.module.register_module_forward_hook(lambda m, a, o: None) if user_hook else None
    session = md.watch(db=":memory:") if watched else None  # discovers the model, as `modeldebug run` does
    losses = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if session is not None:
                session.__enter__()
            for n in SIZES:
                x, y = torch.randn(n, 6), torch.randint(0, 3, (n,))
                opt.zero_grad()
                loss = loss_of(compiled(x), y)
                loss.backward()
                opt.step()
                losses.append(loss.item())
            if session is not None:
                session.__exit__(None, None, None)
    finally:
        if handle is not None:
            handle.remove()
    return {"losses": losses, "warnings": sorted({str(w.message)[:70] for w in caught}),
            "graph_breaks": sum(counters["graph_break"].values()), "session": session}


def test_compiled_training_is_the_same_when_watched() -> None:
    graphs: list[int] = []

    def counting(gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
        graphs[-1] += 1
        return gm.forward

    graphs.append(0)
    plain = _train(counting, watched=False)
    graphs.append(0)
    watched = _train(counting, watched=True)
    assert plain["graph_breaks"] == 0 and watched["graph_breaks"] == 0
    assert graphs[1] == graphs[0] >= 3  # the model's graphs (one recompile) and the loss's: no more
    assert watched["warnings"] == plain["warnings"] == []
    assert watched["losses"] == plain["losses"]

    # the narrow patch that keeps our own hooks out of torch's warning is undone on exit
    assert nn.modules.module._has_any_global_hook is _HAS_ANY_GLOBAL_HOOK
    rec = watched["session"].record
    assert rec.events("internal_error") == []
    names = [e.name for e in rec.entities()]
    assert "fc1.weight" in names and not any("_orig_mod" in n for n in names)
    assert len(rec.column("grad_norm").finite()) == len(SIZES)
    assert rec.series("fc1.weight", "grad_norm").steps.tolist() == [0, 1, 2, 5]  # the sampled steps
    assert len(rec.column("loss").finite()) == len(SIZES)
    (probe,) = [e.data for e in rec.events("batch_mixing_probe")]
    assert "skipped" not in probe and probe["mixed_samples"] == 0
    (skip,) = [e.data for e in rec.events("module_skipped")]
    assert skip["module"] == "Net" and "torch.compile" in skip["reason"]


class CountingSequential(nn.Sequential):
    """Counts calls of its forward in a buffer (a probe that reached this model would add one)."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(*layers)
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add_(1)
        return super().forward(x)


@pytest.mark.parametrize("how", ["submodule", "forward"])
def test_compiled_parts_of_a_model(how: str) -> None:
    """A compiled submodule, or ``model.forward = torch.compile(model.forward)``: the same graphs and
    losses when watched, clean names, and the probe runs on its copy, never on the user's model."""
    runs = []
    for watched in (False, True):
        torch._dynamo.reset()
        torch.manual_seed(0)
        graphs = [0]

        def counting(gm: torch.fx.GraphModule, example_inputs: Any, graphs: list[int] = graphs) -> Any:
            graphs[0] += 1
            return gm.forward

        model = CountingSequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        if how == "submodule":
            model[0] = torch.compile(model[0], backend=counting)
        else:
            model.forward = torch.compile(model.forward, backend=counting)  # type: ignore[method-assign]
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        session = md.watch(db=":memory:") if watched else None
        losses = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if session is not None:
                session.__enter__()
            for _ in range(4):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(torch.randn(8, 6)), torch.randint(0, 3, (8,)))
                loss.backward()
                opt.step()
                losses.append(loss.item())
            if session is not None:
                session.__exit__(None, None, None)
        runs.append((losses, graphs[0], [str(w.message) for w in caught], int(model.calls), session))
    assert runs[1][:4] == runs[0][:4]  # losses, graphs, warnings, calls of the user's forward
    session = runs[1][4]
    rec = session.record
    assert rec.events("internal_error") == []
    assert {"0.weight", "2.weight"} <= {e.name for e in rec.entities()}
    assert not any("_orig_mod" in e.name for e in rec.entities())
    (probe,) = [e.data for e in rec.events("batch_mixing_probe")]
    assert "skipped" not in probe


def test_the_users_own_global_hooks_still_warn() -> None:
    """torch warns about global hooks on compiled modules; ours are not the user's, theirs are."""
    plain = _train("eager", watched=False, user_hook=True)
    watched = _train("eager", watched=True, user_hook=True)
    assert plain["warnings"] and watched["warnings"] == plain["warnings"]
    assert watched["losses"] == plain["losses"]


@pytest.mark.slow
def test_inductor_compiled_training_is_the_same_when_watched() -> None:
    """The default backend (C++ code generation on CPU: slow the first time)."""
    plain = _train("inductor", watched=False)
    plain_graphs = counters["stats"]["unique_graphs"]
    watched = _train("inductor", watched=True)
    assert counters["stats"]["unique_graphs"] == plain_graphs
    assert watched["graph_breaks"] == plain["graph_breaks"] == 0
    assert watched["warnings"] == plain["warnings"] == []
    assert watched["losses"] == plain["losses"]
