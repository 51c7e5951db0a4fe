"""The guard between a language model's answer and the report: the rules' findings always stand.

What a model may do, and what it may not:
- explain: its words are attached to the findings they refer to (`evidence["llm_note"]`);
- add hypotheses: issues that restate no rule finding are kept apart, marked as the model's own,
  with a flag when they name a location the run does not have; they never become findings;
- suggest recommendations: kept apart too, shown and never run;
- reorder: only within a run of findings the evidence ranks equally (same severity, same
  confidence band, same onset step or none known, same number of symptoms explained). A root
  cause the rules put first on evidence stays first.
- It can never drop a finding (every rule finding is in the result, whatever the answer mentions)
  and never change a severity or a confidence: a lower rating is recorded as its opinion
  (`evidence["llm_severity"]`) and, for a high-confidence finding, said in a note.
Its text is cleaned of terminal escape sequences and control characters and cut to length.
Code it suggests is never shown when it touches the file system, processes or the network
(`safety.unsafe_reason`: parsed with `ast`, never run): the implementation is withheld and the
suggestion says "unsafe suggestion withheld: it calls os.system"; unsafe code spans and shell
commands in its text are replaced the same way, and `notes`/`withheld` say what was held back.
No DSPy here: the guard works on plain values and is tested on its own.
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from ..rules.base import SEVERITY_ORDER, Finding, Recommendation
from .evidence import Evidence
from .safety import safe_text, unsafe_reason
from .schema import DebugAnswer

__all__ = ["GuardOutcome", "HIGH_CONFIDENCE", "Hypothesis", "InvalidAnswer", "apply_guard", "clean_text",
           "validate_answer"]

#: a rule finding at or above this confidence is "high-confidence": the model is told it may not demote it
HIGH_CONFIDENCE = 0.8
_ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MAX_TEXT = 2000
_MAX_ITEMS = 10


class InvalidAnswer(ValueError):
    """The model's answer does not fit the schema (or says nothing)."""


def clean_text(text: Any, limit: int = _MAX_TEXT) -> str:
    """Model text made safe to print: no escape sequences or control characters, at most `limit` chars."""
    s = _CONTROL.sub("", _ANSI.sub("", str(text or ""))).strip()
    return s if len(s) <= limit else s[:limit - 3].rstrip() + "..."


def _one_line(text: Any, limit: int = 40) -> str:
    """A short name the model wrote (a finding id), cleaned and on one line."""
    return " ".join(clean_text(text, limit).split())


def validate_answer(raw: Any) -> DebugAnswer:
    """A `DebugAnswer` from a dict, a DSPy `Prediction` or a `DebugAnswer`; `InvalidAnswer` otherwise."""
    if isinstance(raw, DebugAnswer):
        data: Any = raw.model_dump()
    elif isinstance(raw, dict):
        data = raw
    elif raw is not None and hasattr(raw, "toDict"):  # dspy.Prediction, without importing dspy
        data = {k: v for k, v in raw.toDict().items() if k in DebugAnswer.model_fields}
    else:
        raise InvalidAnswer(f"expected the answer's fields, got {type(raw).__name__}")
    try:
        answer = DebugAnswer.model_validate(_plain(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise InvalidAnswer(f"{where}: {err.get('msg', 'invalid')}") from None
    if not answer.root_cause.strip() and not answer.answer.strip() and not answer.issues:
        raise InvalidAnswer("the answer is empty (no root cause, no answer, no issues)")
    return answer


def _plain(value: Any) -> Any:
    """Pydantic models (DSPy parsed them with our schema) back to dicts, so validation runs once, here."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class Hypothesis:
    """An issue the model raised that no rule found: its opinion, marked as such, never a finding."""

    type: str
    severity: str
    description: str
    location: str | None = None
    #: True/False when the run's module names are known; False means the model named a place the run lacks
    location_known: bool | None = None

    def to_text(self) -> str:
        where = f" at {self.location}" if self.location else ""
        flag = " (no such module or parameter in this run)" if self.location_known is False else ""
        return f"[{self.severity}] {self.type}{where}{flag}: {self.description}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GuardOutcome:
    """The answer after the guard: every rule finding (copied), the model's additions kept apart."""

    findings: list[Finding]
    #: finding ids (F1.. in the rules' order) in the merged order
    order: list[str]
    #: the findings the model named, in its order (for evaluating the model alone, not for the report)
    llm_order: list[str]
    root_cause: str = ""
    answer: str = ""
    hypotheses: list[Hypothesis] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: code of the model's that was not shown: {"where", "reason"} (the code itself is not kept)
    withheld: list[dict[str, str]] = field(default_factory=list)


class _Safe:
    """Model text made safe to show, keeping count of what was withheld."""

    def __init__(self) -> None:
        self.withheld: list[dict[str, str]] = []

    def text(self, text: Any, where: str, limit: int = _MAX_TEXT) -> str:
        out, reasons = safe_text(clean_text(text, limit))
        self.withheld += [{"where": where, "reason": r} for r in reasons]
        return out

    def code(self, code: Any, where: str) -> tuple[str | None, str | None]:
        """(the code, None) when it is safe to show; (None, why) when it is not."""
        text = clean_text(code, 1000) or None
        why = unsafe_reason(text)
        if why is None:
            return text, None
        self.withheld.append({"where": where, "reason": why})
        return None, why


def _tie_key(f: Finding) -> tuple[Any, ...]:
    """What the evidence ranks by; findings with equal keys are ranked equally by it."""
    return (f.severity, f.confidence >= HIGH_CONFIDENCE, f.step, len(f.evidence.get("symptoms", [])))


def _why_ahead(a: Finding, b: Finding) -> str:
    if a.severity != b.severity:
        return f"severity {a.severity} vs {b.severity}"
    if (a.confidence >= HIGH_CONFIDENCE) != (b.confidence >= HIGH_CONFIDENCE):
        return f"confidence {a.confidence:.2f} vs {b.confidence:.2f}"
    if a.step != b.step:
        return f"onset step {a.step} vs {b.step}"
    return "it explains more symptoms"


def _label(fid: str, f: Finding) -> str:
    return f"{fid} ({f.code} {f.kind}{f' at {f.location}' if f.location else ''})"


def apply_guard(evidence: Evidence, answer: DebugAnswer) -> GuardOutcome:
    """Merge a validated answer into the rule findings under the rules stated in the module docstring."""
    rules = evidence.findings
    ids = evidence.ids
    index = {fid: i for i, fid in enumerate(ids)}
    merged = [copy.deepcopy(f) for f in rules]
    notes: list[str] = []
    hypotheses: list[Hypothesis] = []
    safe = _Safe()

    # 1. the model's preferred order: its explicit order, then the findings its issues restate
    pref: list[str] = []
    unknown: list[str] = []
    for raw in answer.finding_order:
        fid = raw.strip().upper()
        if fid in index and fid not in pref:
            pref.append(fid)
        elif fid not in index:
            unknown.append(_one_line(raw))
    mentioned: set[str] = set(pref)
    for issue in answer.issues:
        fid = (issue.finding or "").strip().upper() or None
        if fid is None and issue.location:  # an unlabelled restatement: same category and place
            fid = next((i for i, f in zip(ids, rules) if f.category == issue.type and f.location == issue.location), None)
        if fid is None or fid not in index:
            if fid is not None:
                unknown.append(_one_line(fid))
            known = (issue.location in evidence.locations) if (issue.location and evidence.locations) else None
            hypotheses.append(Hypothesis(issue.type, issue.severity, safe.text(issue.description, "a hypothesis"),
                                         clean_text(issue.location, 200) or None, known))
            continue
        mentioned.add(fid)
        if fid not in pref:
            pref.append(fid)
        f = merged[index[fid]]
        f.evidence["llm_note"] = safe.text(issue.description, f"the note on {fid}")
        if issue.severity != f.severity:
            f.evidence["llm_severity"] = issue.severity
            if SEVERITY_ORDER[issue.severity] < SEVERITY_ORDER[f.severity] and f.confidence >= HIGH_CONFIDENCE:
                notes.append(f"the LLM rated {_label(fid, f)} {issue.severity}; the rule's {f.severity} "
                             f"(confidence {f.confidence:.2f}) stands")
    if unknown:
        notes.append(f"the LLM referred to findings that do not exist ({', '.join(dict.fromkeys(unknown))}): "
                     "treated as its own hypotheses")
    left_out = [fid for fid, f in zip(ids, rules)
                if fid not in mentioned and (f.confidence >= HIGH_CONFIDENCE or f.severity == "high")]
    if left_out:
        notes.append(f"the LLM's answer left out {', '.join(_label(i, rules[index[i]]) for i in left_out)}: kept")

    # 2. reorder only within runs of findings the evidence ranks equally
    llm_order = list(pref)
    rank = {fid: n for n, fid in enumerate(pref)}
    order: list[str] = []
    start = 0
    while start < len(ids):
        end = start + 1
        while end < len(ids) and _tie_key(rules[end]) == _tie_key(rules[start]):
            end += 1
        block = ids[start:end]
        order += sorted(block, key=lambda fid: (rank.get(fid, len(pref)), index[fid]))
        start = end
    if pref and order and pref[0] != order[0]:
        top, want = rules[index[order[0]]], rules[index[pref[0]]]
        notes.append(f"the LLM would put {_label(pref[0], want)} first; the evidence ranks {_label(order[0], top)} "
                     f"ahead ({_why_ahead(top, want)}): kept the evidence's order")

    # 3. recommendations: kept apart, deduplicated against the rules' own
    seen = {r.description.strip().lower() for f in rules for r in f.recommendations}
    recs: list[Recommendation] = []
    for r in answer.recommendations[:_MAX_ITEMS]:
        desc = safe.text(r.description, "a suggestion", 600)
        if desc and desc.lower() not in seen:
            seen.add(desc.lower())
            code, why = safe.code(r.implementation, f"the code of the suggestion {desc[:60]!r}")
            if why is not None:
                desc = f"{desc} (unsafe suggestion withheld: {why})"
            recs.append(Recommendation(r.type, desc, code))
    root_cause, said = safe.text(answer.root_cause, "the root cause"), safe.text(answer.answer, "the answer")
    notes += [f"unsafe suggestion withheld from {w['where']}: {w['reason']}" for w in safe.withheld]
    return GuardOutcome(findings=[merged[index[fid]] for fid in order], order=order, llm_order=llm_order,
                        root_cause=root_cause, answer=said, hypotheses=hypotheses[:_MAX_ITEMS], recommendations=recs,
                        notes=notes, withheld=safe.withheld)
