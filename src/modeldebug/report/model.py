"""Report: a view of a Diagnosis (findings and run summary), rendered to the terminal, JSON and HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..catalogue import SEVERITY_ORDER, Finding
from ..config import DebuggingConfig
from ..errors import DebuggingError
from ..jsonsafe import json_safe
from ..record import Record
from ..rules.diagnosis import Diagnosis, diagnose

__all__ = ["Report", "REPORT_VERSION", "json_safe"]

REPORT_VERSION = 1


class Report:
    """The diagnosis of one run: `findings` (most important first) and `run` metadata."""

    def __init__(self, findings: list[Finding], run: dict[str, Any], record: Record | None = None,
                 diagnosis: Diagnosis | None = None) -> None:
        self.findings = findings
        self.run = run
        self.record = record
        self.diagnosis = diagnosis

    @classmethod
    def from_diagnosis(cls, diagnosis: Diagnosis) -> Report:
        """The report is a view of a diagnosis."""
        return cls(diagnosis.findings, diagnosis.run, diagnosis.record, diagnosis)

    @classmethod
    def from_record(cls, record: Record, config: DebuggingConfig | None = None, *, against: bool = False) -> Report:
        """Diagnose `record` (see `modeldebug.rules.diagnose`; `against`: invariants are judged too) and view it."""
        return cls.from_diagnosis(diagnose(record, config, against=against))

    # -- queries ---------------------------------------------------------------------------------
    def kinds(self) -> list[str]:
        return [f.kind for f in self.findings]

    def worst(self) -> str | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=lambda s: SEVERITY_ORDER[s])

    def fails(self, severity: str) -> bool:
        """True when a finding is at or above `severity` (for --fail-on)."""
        return any(SEVERITY_ORDER[f.severity] >= SEVERITY_ORDER[severity] for f in self.findings)

    def rules_failed(self) -> list[Finding]:
        """The findings that say a rule could not run (see `rules.analyze`): its verdict is unknown."""
        return [f for f in self.findings if f.kind == "internal_error" and "rule" in f.evidence]

    def exit_code(self, fail_on: str | None) -> int:
        """The exit code of `report --fail-on SEVERITY`: 0 pass, 1 a finding at or above it.

        When none is, but a rule could not run, the run may still hold such a problem: that is not a
        pass. It raises DebuggingError, whose one line names the rules and why they failed; the CLI
        prints it and exits 2 (verdict unknown). Without `fail_on` it is always 0.
        """
        if not fail_on:
            return 0
        failed = self.rules_failed()
        unknown = {id(f) for f in failed}
        if any(SEVERITY_ORDER[f.severity] >= SEVERITY_ORDER[fail_on] for f in self.findings if id(f) not in unknown):
            return 1
        if failed:
            why = "; ".join(f"{f.evidence.get('rule')} ({f.evidence.get('error')})" for f in failed[:3])
            more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
            raise DebuggingError(f"--fail-on {fail_on} cannot pass: {len(failed)} rule(s) could not run, so their "
                                 f"verdict is unknown: {why}{more}",
                                 details={"rules": [f.evidence.get("rule") for f in failed]})
        return 0

    # -- output ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        from .verdict import verdict

        return json_safe({"version": REPORT_VERSION, "run": {**self.run, **verdict(self).fields()},
                           "findings": [f.to_dict() for f in self.findings]})

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """The contract's JSON report; written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML report (inline SVG plots, no external assets); written to `path` when given."""
        from .html import render_html

        text = render_html(self)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_text(self, *, width: int = 100) -> str:
        """The terminal rendering as plain text (for logs, tests and LLM prompts)."""
        from .terminal import render_text

        return render_text(self, width=width)

    def print(self, console: Any = None) -> None:
        """Print to the terminal (stderr by default) with rich."""
        from .terminal import print_report

        print_report(self, console)

    def __repr__(self) -> str:
        return f"Report({len(self.findings)} findings: {', '.join(self.kinds()) or 'none'})"
