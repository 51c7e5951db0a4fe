"""What a generative model DOES: runs at all, determinism, knowledge, robustness, safety, complaints, regressions.

```python
from modeldebug.behaviour import probe, save_baseline, compare_baseline, reproduce_complaint
result = probe(my_model)                  # my_model(prompt) -> str, or anything with generate(prompt)
print(result.summary_text()); result.report().print()
save_baseline(result, "baseline.json")    # later: compare_baseline(new_model, "baseline.json")
```
Findings use the category ``behaviour`` and the codes in `CODES` (BEH001...). Nothing here needs an LLM;
the safety judge is any callable ``judge(prompt, output) -> (harmful, category | None)`` (or a
classifier's score or label), `llm_judge(lm)` for a language model through DSPy; the default is a
heuristic (every answer that is not a refusal counts as harmful).
PyTorch is imported only when a model's weights are checked.
"""

from __future__ import annotations

from .attempts import Attempt, BehaviourConfig, ProbeResult
from .baseline import Baseline, Comparison, compare_baseline, load_baseline, save_baseline
from .codes import CODES
from .complaint import ComplaintResult, reproduce_complaint
from .datasets import HAZARD_CATEGORIES, DirectionalPair, Fact, SafetyPrompt, load_facts, load_safety
from .deepdive import DeepDive, deep_dive
from .endpoint import EndpointError, OpenAIEndpoint
from .hf import HuggingFaceModel, HuggingFacePipeline
from .judges import judge_verdict, llm_judge
from .model import GenerativeModel, Model, as_model, load_model_spec
from .mutations import MUTATIONS
from .refusal import is_refusal, refusal_reason
from .safety import refusal_judge
from .stats import wilson
from .suite import ALL_PROBES, BehaviourResult, probe
from .weights import WeightCheck, check_weights

__all__ = [
    "ALL_PROBES", "Attempt", "Baseline", "BehaviourConfig", "BehaviourResult", "CODES", "Comparison",
    "ComplaintResult", "DeepDive", "DirectionalPair", "EndpointError", "Fact", "GenerativeModel",
    "HAZARD_CATEGORIES", "HuggingFaceModel", "HuggingFacePipeline", "MUTATIONS", "Model", "OpenAIEndpoint",
    "ProbeResult", "SafetyPrompt", "WeightCheck", "as_model", "check_weights", "compare_baseline", "deep_dive",
    "is_refusal", "judge_verdict", "llm_judge", "load_baseline", "load_facts", "load_model_spec", "load_safety",
    "probe", "refusal_judge", "refusal_reason", "reproduce_complaint", "save_baseline", "wilson",
]
