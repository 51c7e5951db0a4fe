"""The one catalogue: every finding code of every family, declared once.

A leaf package (it imports nothing of ours but the error types): `modeldebug rules`, `explain`,
`--select`/`--ignore`, `behaviour codes`, docs generation and every finding builder read it.
Detectors live with their subject and refer to their spec by code:

```python
from modeldebug.catalogue import CATALOGUE

spec = CATALOGUE["GRD001"]
spec.finding(severity="high", confidence=0.9, title=..., description=...)
```

Users add their own specs (and detectors) through the `modeldebug.rules` entry point or
`--rules FILE`; see docs/plugins.md.
"""

from __future__ import annotations

from .finding import SEVERITY_ORDER, Finding, Recommendation, Severity
from .registry import Catalogue
from .spec import FAMILIES, HEADINGS, Option, Spec
from .specs import BUILTIN_OPTIONS, BUILTIN_SPECS

__all__ = [
    "CATALOGUE", "FAMILIES", "HEADINGS", "SEVERITY_ORDER", "Catalogue", "Finding", "Option", "Recommendation",
    "Severity", "Spec",
]

#: The process-wide catalogue: the built-in specs, plus any plugin's.
CATALOGUE = Catalogue(BUILTIN_SPECS, BUILTIN_OPTIONS)
