"""Comparing runs: invariants learned from healthy runs (`learn`, `check`) and run diffs (`diff`).

```python
from modeldebug.compare.learn import learn
from modeldebug.compare.check import check
invariants = learn([Record.open("good1.db"), Record.open("good2.db")])
findings = check(Record.open("new.db"), invariants)   # INV001... findings
```
Importing this package loads nothing heavy: `cli` reads `--against` files through `invariants`.
"""
