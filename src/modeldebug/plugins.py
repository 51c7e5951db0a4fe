"""What a rules plugin imports: the same parts modeldebug's own rules are made of.

See docs/plugins.md for a worked example.
"""

from __future__ import annotations

from .catalogue import Finding, Option, Recommendation, Spec
from .rules.base import Rule
from .rules.context import Context, fmt, module_ref
from .catalogue.plugins import declare, load_rules

__all__ = ["Context", "Finding", "Option", "Recommendation", "Rule", "Spec", "declare", "fmt", "load_rules",
           "module_ref"]
