"""modeldebug: finds out why a PyTorch model will not train, and says how to fix it.

```python
import modeldebug as md

with md.watch(model, optimizer=opt) as session:
    ...                                    # your training loop, unchanged
print(session.report().to_text())
```
"""

from ._version import __version__
from .capture import WatchSession, run_script, watch
from .config import DebuggingConfig
from .errors import (BadInputError, DebuggingError, MissingDependencyError, RecordCorruptError,
                     ScriptNotFoundError, UnknownRuleError)
from .record import Record
from .report import Report
from .rules import Finding, Recommendation, analyze

__all__ = [
    "BadInputError", "DebuggingConfig", "DebuggingError", "Finding", "MissingDependencyError",
    "Recommendation", "Record", "RecordCorruptError", "Report", "ScriptNotFoundError",
    "UnknownRuleError", "WatchSession", "__version__", "analyze", "run_script", "watch",
]
