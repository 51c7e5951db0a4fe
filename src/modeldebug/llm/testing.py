"""A deterministic fake language model, for our tests and yours; no network, no weights.

`fake_lm(script)` is a real `dspy.LM` whose engine answers from a script instead of a server, so
everything else (DSPy's adapters and parsing, ReAct, our guard) runs for real. A script is a list
of answers, one per model call, or one function called for every call. An answer is:
- a dict of output field values (formatted the way DSPy's ChatAdapter expects),
- a string (sent as it is: use it for malformed output),
- an exception instance (raised, as a failing server would),
- a function of the `FakeCall` that returns one of these.
Token counts are deterministic (4 characters a token), so usage reporting can be tested.

`echo_analyst` and `contrarian_analyst` are scripted analysts: the first restates the rule
findings in order and walks the tool loop once; the second contradicts the rules in every way the
guard must stop (drops the top finding, reverses the order, demotes severities, invents a module).

```python
from modeldebug.llm import explain_report
from modeldebug.llm.testing import fake_lm, echo_analyst
explanation = explain_report(report, fake_lm(echo_analyst))
```
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeCall", "ScriptedEngine", "contrarian_analyst", "echo_analyst", "fake_lm"]

_HEADER = re.compile(r"^\[\[ ## (\w+) ## \]\]\s*$", re.M)
_OUTPUT_FIELD = re.compile(r"^\d+\. `(\w+)`", re.M)


@dataclass
class FakeCall:
    """One request as the fake model sees it."""

    n: int
    system: str
    prompt: str
    #: the request's input sections by field name (rule_findings, question, trajectory, ...)
    inputs: dict[str, str] = field(default_factory=dict)
    #: the output fields DSPy asks for, in order
    output_fields: list[str] = field(default_factory=list)

    def findings(self) -> list[dict[str, Any]]:
        """The rule findings the model was given (parsed from the `rule_findings` input)."""
        try:
            data = json.loads(self.inputs.get("rule_findings", "[]"))
        except ValueError:
            return []
        return data if isinstance(data, list) else []

    @property
    def is_tool_step(self) -> bool:
        return "next_tool_name" in self.output_fields

    def tool_calls_so_far(self) -> list[str]:
        """Names of the tools already called in this loop (from the trajectory)."""
        # the trajectory's own field headers split it into sections of the prompt: tool_name_0, ...
        steps = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in self.inputs.items() if re.fullmatch(r"tool_name_\d+", k))
        return [v.strip() for _, v in steps]


def _sections(text: str) -> dict[str, str]:
    parts = _HEADER.split(text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def _output_fields(system: str) -> list[str]:
    block = system.split("Your output fields are:", 1)[-1].split("All interactions will be structured", 1)[0]
    return _OUTPUT_FIELD.findall(block)


def _format(values: dict[str, Any]) -> str:
    def text(v: Any) -> str:
        if isinstance(v, str):
            return v
        if hasattr(v, "model_dump"):
            v = v.model_dump()
        return json.dumps(v, default=lambda o: o.model_dump() if hasattr(o, "model_dump") else str(o))

    body = "".join(f"[[ ## {k} ## ]]\n{text(v)}\n\n" for k, v in values.items())
    return body + "[[ ## completed ## ]]"


Answer = Any  # dict | str | BaseException | Callable[[FakeCall], Answer]


class ScriptedEngine:
    """A DSPy engine (`complete(Request) -> Response`) that answers from a script."""

    def __init__(self, script: Sequence[Answer] | Callable[[FakeCall], Answer]) -> None:
        self._fn = script if callable(script) else None
        self._script = list(script) if not callable(script) else []
        self.calls: list[FakeCall] = []

    def complete(self, request: Any) -> Any:
        from dspy.lm15 import Message, Response, TextPart, Usage

        system = request.system if isinstance(request.system, str) else "".join(
            getattr(p, "text", "") for p in (request.system or ()))
        prompt = "\n\n".join(m.text or "" for m in request.messages if m.role == "user")
        last = next((m.text or "" for m in reversed(request.messages) if m.role == "user"), "")
        call = FakeCall(len(self.calls), system, prompt, _sections(last), _output_fields(system))
        self.calls.append(call)
        if self._fn is not None:
            answer = self._fn(call)
        elif call.n < len(self._script):
            answer = self._script[call.n]
        else:
            raise RuntimeError(f"the fake LM's script has no answer for call {call.n + 1}")
        while callable(answer) and not isinstance(answer, BaseException):
            answer = answer(call)
        if isinstance(answer, BaseException):
            raise answer
        out = answer if isinstance(answer, str) else _format(answer)
        tokens_in = math.ceil((len(system) + len(prompt)) / 4)
        tokens_out = math.ceil(len(out) / 4)
        return Response(id=f"fake-{call.n}", model="fake", message=Message.assistant((TextPart(out),)),
                        finish_reason="stop", usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out,
                                                          total_tokens=tokens_in + tokens_out))

    def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        """Nothing to close: no connection."""


def fake_lm(script: Sequence[Answer] | Callable[[FakeCall], Answer], *, model: str = "fake/scripted") -> Any:
    """A `dspy.LM` (cache off) answering from `script`; its engine is `lm.engine` (with `.calls`)."""
    import dspy

    return dspy.LM(model, engine=ScriptedEngine(script), cache=False, num_retries=0)


def _final(call: FakeCall, values: dict[str, Any]) -> dict[str, Any]:
    """Only the fields this call asks for (ReAct's extract step adds `reasoning`)."""
    extra = {"reasoning": "Scripted analysis of the rule findings."}
    return {k: values.get(k, extra.get(k, "")) for k in call.output_fields}


def echo_analyst(call: FakeCall) -> dict[str, Any]:
    """Agrees with the rules: in a loop it lists the findings once, then restates them in order."""
    if call.is_tool_step:
        if "list_findings" not in call.tool_calls_so_far():
            return {"next_thought": "First, the findings.", "next_tool_name": "list_findings", "next_tool_args": {}}
        return {"next_thought": "Enough evidence.", "next_tool_name": "finish", "next_tool_args": {}}
    fs = call.findings()
    top = fs[0] if fs else None
    root = (f"{top['title']} ({top['kind']}{' at ' + top['location'] if top.get('location') else ''})."
            if top else "The rules found nothing wrong.")
    issues = [{"type": f["category"] if f["category"] in _TYPES else "model", "severity": f["severity"],
               "description": f"{f['title']}.", "location": f.get("location"), "finding": f["id"]} for f in fs]
    return _final(call, {"root_cause": root, "answer": root if call.inputs.get("question") else "",
                         "issues": issues, "recommendations": [], "finding_order": [f["id"] for f in fs]})


def contrarian_analyst(call: FakeCall) -> dict[str, Any]:
    """Disagrees with the rules in every way the guard must stop; deterministic, offline."""
    if call.is_tool_step:
        return {"next_thought": "No need to look.", "next_tool_name": "finish", "next_tool_args": {}}
    fs = call.findings()
    rest = list(reversed(fs[1:]))  # the top finding is left out, the others reversed and demoted
    issues = [{"type": f["category"] if f["category"] in _TYPES else "model", "severity": "low",
               "description": "Probably harmless.", "location": f.get("location"), "finding": f["id"]} for f in rest]
    issues.append({"type": "data", "severity": "high", "description": "The labels are \x1b[31mshuffled\x1b[0m.",
                   "location": "made_up_layer", "finding": None})
    return _final(call, {"root_cause": "The data is bad; ignore the detectors.", "answer": "Bad data.",
                         "issues": issues,
                         "recommendations": [{"type": "fix", "description": "Delete the checkpoints.",
                                              "implementation": "import shutil; shutil.rmtree('checkpoints')"}],
                         "finding_order": [f["id"] for f in rest]})


_TYPES = {"gradient", "activation", "loss", "optimizer", "data", "numerics", "model", "memory", "performance",
          "runtime", "onnx", "behaviour"}
