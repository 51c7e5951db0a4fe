"""The behaviour finding codes (BEH...): one flat table, stable codes, never reused.

Each entry has its finding kind, a one-line summary and the documentation that
``modeldebug behaviour codes CODE`` prints. `finding()` builds a `Finding` with category
``behaviour`` from a code, so kinds and codes cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..rules.base import Finding, Recommendation, Severity

__all__ = ["CODES", "Code", "finding"]


@dataclass(frozen=True)
class Code:
    """One behaviour finding code: kind, summary and documentation."""

    code: str
    kind: str
    summary: str
    doc: str


def _c(code: str, kind: str, summary: str, doc: str) -> Code:
    return Code(code, kind, summary, doc)


CODES: dict[str, Code] = {c.code: c for c in [
    _c("BEH001", "generation_error", "The model raises when asked to generate",
       "What it detects: generate(prompt) raised an exception (or returned something that is not a string).\n"
       "Why is this bad? Nothing else can be judged until the model answers.\n"
       "Recommended fix: run the failing prompt by hand; the evidence holds the exception types and the first message."),
    _c("BEH002", "empty_output", "The model returns empty output",
       "What it detects: answers that are empty or only whitespace.\n"
       "Why is this bad? Usually an end-of-sequence token produced first, max_tokens of 0, decoding that drops "
       "everything as special tokens, or a chat template the model was not trained with.\n"
       "Recommended fix: decode with skip_special_tokens=False once to see what was produced; check max_tokens "
       "and the prompt template."),
    _c("BEH003", "prompt_echo", "The model returns the prompt unchanged",
       "What it detects: the output equals the prompt (or is the prompt with nothing after it).\n"
       "Why is this bad? The serving code returns the full sequence instead of the new tokens, or the model "
       "generates nothing.\n"
       "Recommended fix: slice off the prompt tokens before decoding (return_full_text=False in pipelines)."),
    _c("BEH004", "slow_generation", "Generation is slow",
       "What it detects: the 95th percentile of generate() latency is above the configured limit.\n"
       "Recommended fix: cap max_tokens, use a KV cache, batch requests, or serve on an accelerator."),
    _c("BEH010", "nondeterministic_output", "The same prompt gives different answers at temperature 0",
       "What it detects: the same prompt asked several times with temperature 0 and a fixed seed gives different "
       "outputs (exact-match rate, distinct outputs and edit distance are in the evidence).\n"
       "Why is this bad? Tests, caches and regression checks cannot work; often dropout left on (the model is "
       "in training mode) or sampling that ignores the temperature.\n"
       "Recommended fix: model.eval(); greedy decoding (do_sample=False); seed the generator."),
    _c("BEH020", "knows_nothing", "The model fails nearly every basic factual prompt",
       "What it detects: accuracy on the bundled facts (arithmetic, capitals, units, common facts) is near zero "
       "even when scored leniently.\n"
       "Why is this bad? A model that knows nothing usually has no trained weights: a checkpoint that did not "
       "load (strict=False), the wrong checkpoint, or a tokenizer that does not match the model.\n"
       "Recommended fix: load with strict=True and check missing/unexpected keys; compare the tokenizer's "
       "vocabulary size with the embedding size."),
    _c("BEH021", "knowledge_gap", "One capability group is far below the others",
       "What it detects: a capability (e.g. units) scores low while the model passes others.\n"
       "Recommended fix: add training data for that capability, or route such questions elsewhere."),
    _c("BEH022", "weights_not_loaded", "The weights look all-zero, non-finite or freshly initialised",
       "What it detects: parameters that are all zero, contain NaN/Inf, or have the statistics of PyTorch's or "
       "Hugging Face's default initialisation (uniform within the Kaiming bound, or normal with std 0.02).\n"
       "Why is this bad? The model runs but has learned nothing: the checkpoint was not loaded into it.\n"
       "Known problems: a model trained very briefly still looks initialised; the evidence lists each tensor.\n"
       "Recommended fix: model.load_state_dict(torch.load(path), strict=True) and check the returned keys."),
    _c("BEH023", "train_mode_misuse", "The model generates in training mode with dropout active",
       "What it detects: the model's module is in training mode and has Dropout layers with p > 0 while "
       "generating, and the answers did not vary (the caller reseeds every call, or determinism was not probed).\n"
       "Why is this bad? Every answer is made by a randomly thinned network: worse and, without reseeding, random.\n"
       "Recommended fix: model.eval() before serving."),
    _c("BEH030", "not_invariant", "Harmless changes to the prompt change the answer",
       "What it detects: typos, letter case or extra whitespace turn a right answer into a wrong one.\n"
       "Recommended fix: train with noised prompts (case, typos, spacing) or normalise input before the model."),
    _c("BEH031", "directional_failure", "Changing the question does not change the answer",
       "What it detects: two prompts that must have different answers (7 + 5 and 7 + 6) get the same answer.\n"
       "Why is this bad? The model ignores the part of the prompt that matters: it pattern-matches the template.\n"
       "Recommended fix: more varied training examples of the template; check that the prompt is not truncated."),
    _c("BEH040", "harmful_output", "The model answers hazard prompts instead of refusing",
       "What it detects: per MLCommons hazard category (S1-S14), the rate of bundled hazard prompts the judge "
       "marks harmful, with a 95% Wilson interval. The default judge counts every answer that is not a "
       "refusal as harmful (an upper bound); plug a classifier as judge for precision.\n"
       "Recommended fix: add refusal examples for the failing categories (the deep dive lists the words and "
       "lengths of the failing prompts and suggests data filters), or put a guard model in front."),
    _c("BEH041", "over_refusal", "The model refuses benign prompts",
       "What it detects: benign controls that only sound dangerous (\"kill a Python process\") are refused.\n"
       "Recommended fix: add benign look-alike prompts with helpful answers to the safety training data."),
    _c("BEH050", "complaint_reproduced", "A user's complaint reproduces",
       "What it detects: the complaint's example (or a variant of it) produces the bad behaviour; the minimal "
       "reproducing prompt is in the evidence.\n"
       "Recommended fix: add the minimal prompt to the regression suite, then fix and compare."),
    _c("BEH051", "complaint_not_reproduced", "A user's complaint did not reproduce",
       "What it detects: neither the example nor any variant showed the bad behaviour.\n"
       "Recommended fix: ask for the exact prompt, the sampling settings and the model version."),
    _c("BEH060", "behaviour_regression", "The new model scores worse than the baseline",
       "What it detects: a probe group's pass rate dropped compared with the saved baseline (with a 95% "
       "interval on the difference), and which prompts flipped from pass to fail.\n"
       "Recommended fix: inspect the flipped prompts; compare training data and checkpoints between versions."),
    _c("BEH061", "baseline_mismatch", "The baseline was made on different prompts or settings",
       "What it detects: the baseline's probe data or options differ from this run, so some prompts cannot be "
       "compared.\nRecommended fix: make a new baseline with this modeldebug version."),
]}


def finding(code: str, *, severity: Severity, confidence: float, title: str, description: str,
            location: str | None = None, evidence: dict[str, Any] | None = None,
            recommendations: list[Recommendation] | None = None) -> Finding:
    """A `Finding` for behaviour `code` (its kind comes from the table)."""
    return Finding(code=code, kind=CODES[code].kind, category="behaviour", severity=severity,
                   confidence=round(float(confidence), 3), title=title, description=description,
                   location=location, step=None, evidence=evidence or {},
                   recommendations=recommendations or [])
