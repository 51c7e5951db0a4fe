"""DSPy signatures: what the language model is given and what it must answer, with typed fields.

Importing this module imports DSPy; modeldebug imports it only when a model is asked for.
Output field names avoid the names of `dspy.Prediction` methods (labels, items, keys, values,
get, copy), which would shadow them.
"""

from __future__ import annotations

import dspy

from .schema import FindingBrief, LLMIssue, LLMRecommendation

__all__ = ["DebugAnalysis"]


class DebugAnalysis(dspy.Signature):
    """You review the diagnosis of a PyTorch model that does not train or behave as expected.

    Rule-based detectors measured the run and produced `rule_findings` (ids F1, F2, ..., most
    important first, a root cause before the symptoms it explains). Explain the most likely root
    cause in plain words, answer the user's question, restate the findings that matter as issues
    (set `finding` to the id they restate), and add your own hypotheses only where the statistics
    support them (`finding` null). Use only numbers and module names that appear in the inputs or in
    tool results; do not invent measurements. Recommendations are shown to the user, never executed.
    """

    question: str = dspy.InputField(desc="the user's question or complaint; may be empty")
    run_summary: str = dspy.InputField(desc="what ran: script, steps, model, optimizer, exit status")
    rule_findings: list[FindingBrief] = dspy.InputField(desc="the detectors' findings, most important first")
    debug_metrics: str = dspy.InputField(desc="summaries of the loss, learning rate, gradient norm and probes")

    root_cause: str = dspy.OutputField(desc="the most likely root cause, in two to four plain sentences")
    answer: str = dspy.OutputField(desc="a direct answer to the question (empty when there is none)")
    issues: list[LLMIssue] = dspy.OutputField(
        desc="issues: type gradient|activation|loss|optimizer|data|numerics|model|memory|performance|runtime, "
             "severity low|medium|high, description, location (module name or null), finding (F-id or null)")
    recommendations: list[LLMRecommendation] = dspy.OutputField(
        desc="recommendations: type fix|optimization|best_practice, description, implementation (code or null)")
    finding_order: list[str] = dspy.OutputField(desc="the finding ids, most important first, e.g. [\"F1\", \"F2\"]")
