"""Catalogue entries: modeldebug's own failures (a rule that could not run)."""

from __future__ import annotations

from ..spec import Spec

SPECS = (
    Spec(
        code="INT001", kind="internal_error", category="runtime", family="internal", name="rule-could-not-run",
        severity="low",
        summary="One of modeldebug's rules raised while it read the record: its verdict is unknown.",
        doc="""
## What it detects
A rule (a training rule, a cross-rank rule of a distributed job, or a user's own rule) that raised
an exception while it judged the record. The finding names the rule (`evidence.rule`, its code)
and the error in one line (`evidence.error`); the other rules still run. The JSON report also
lists it under `run.rules_failed` as `CODE: error`.

## Why is this bad?
The rule's verdict is unknown: the problem it looks for may be in the run, unreported. That is
why `--fail-on` does not pass while a rule could not run (it exits 2 naming the rule), unless
another finding already fails the run.

## Example
```text
INT001 internal_error: Rule OPT001 could not run, so its verdict is unknown
  TypeError: 'int' object is not iterable
```

## Recommended fix
Report it with the error line (and, if you can share it, the run record). Meanwhile
`--ignore CODE` skips the rule that fails, and `modeldebug report RUN.db` re-judges the stored
run once it is fixed. Damage in the record itself is not reported here: it ends the report with
the record's own one-line error.

## Known problems
Only the failure of a rule is reported this way; a probe of the capture that fails while the
script trains is recorded as an `internal_error` event in the run record, not as a finding.
""",
    ),
)
