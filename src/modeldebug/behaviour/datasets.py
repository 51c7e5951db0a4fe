"""The bundled probe data (small JSON files in ``behaviour/data``) and loaders for your own.

- ``knowledge.json``: short factual prompts with accepted answers, grouped by capability, and
  directional pairs (two facts whose answers must differ).
- ``safety.json``: non-operational hazard prompts tagged with the MLCommons hazard categories S1-S14
  (the ids Llama Guard 3 uses), and benign control prompts that merely sound dangerous.

A safe model refuses the hazard prompts; none of the prompts contains instructions, only requests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import BadInputError

__all__ = ["DirectionalPair", "Fact", "HAZARD_CATEGORIES", "SafetyPrompt", "data_hash", "load_facts",
           "load_safety"]

#: MLCommons AI Safety hazard taxonomy, as used by Llama Guard 3.
HAZARD_CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes", "S2": "Non-Violent Crimes", "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation", "S5": "Defamation", "S6": "Specialized Advice", "S7": "Privacy",
    "S8": "Intellectual Property", "S9": "Indiscriminate Weapons", "S10": "Hate",
    "S11": "Suicide & Self-Harm", "S12": "Sexual Content", "S13": "Elections", "S14": "Code Interpreter Abuse",
}


@dataclass(frozen=True)
class Fact:
    """A factual prompt and the answers accepted for it."""

    id: str
    capability: str
    prompt: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class DirectionalPair:
    """Two facts whose prompts differ in one place, so their answers must differ too."""

    source: str
    target: str
    change: str = ""


@dataclass(frozen=True)
class SafetyPrompt:
    """A prompt to probe safety: a hazard request (`category` S1-S14) or a benign control (`category` None)."""

    id: str
    prompt: str
    category: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def benign(self) -> bool:
        return self.category is None


def _read(source: str | Path | None, bundled: str) -> tuple[dict[str, Any], str]:
    if source is None:
        text = resources.files("modeldebug.behaviour").joinpath("data").joinpath(bundled).read_text(encoding="utf-8")
        where = f"bundled {bundled}"
    else:
        where = str(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInputError(f"cannot read {where}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise BadInputError(f"{where} is not UTF-8 text (byte {exc.start}: {exc.reason}); expected a JSON file "
                                f"like the bundled {bundled}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadInputError(f"{where} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise BadInputError(f"{where}: JSON nested too deeply to read; expected a file like the bundled {bundled}") \
            from None
    if not isinstance(data, dict):
        raise BadInputError(f"{where}: expected a JSON object at the top level")
    return data, where


def _need(entry: Any, key: str, where: str, i: int) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise BadInputError(f"{where}: entry {i} has no {key!r}")
    return entry[key]


def _prompt(entry: Any, where: str, i: int) -> str:
    prompt = _need(entry, "prompt", where, i)
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadInputError(f"{where}: entry {i} has prompt {prompt!r}; expected the prompt's text")
    return prompt


def _entries(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise BadInputError(f"{where}: {key!r} must be a list, got {type(value).__name__}")
    return value


def load_facts(source: str | Path | None = None) -> tuple[list[Fact], list[DirectionalPair]]:
    """Facts and directional pairs from `source` (a JSON file like the bundled one) or the bundled set."""
    data, where = _read(source, "knowledge.json")
    facts: list[Fact] = []
    for i, e in enumerate(_entries(data, "facts", where)):
        answers = _need(e, "answers", where, i)
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise BadInputError(f"{where}: entry {i} needs a non-empty list of answer strings")
        facts.append(Fact(str(e.get("id", f"fact-{i}")), str(e.get("capability", "general")),
                          _prompt(e, where, i), tuple(answers)))
    if not facts:
        raise BadInputError(f"{where}: no facts (expected {{\"facts\": [{{\"prompt\": ..., \"answers\": [...]}}]}})")
    ids = {f.id for f in facts}
    if len(ids) != len(facts):
        raise BadInputError(f"{where}: fact ids are not unique")
    pairs = []
    for i, e in enumerate(_entries(data, "directional", where)):
        src, dst = _need(e, "from", where, i), _need(e, "to", where, i)
        if not isinstance(src, str) or not isinstance(dst, str) or src not in ids or dst not in ids:
            raise BadInputError(f"{where}: directional pair {i} names an unknown fact ({src!r} -> {dst!r})")
        pairs.append(DirectionalPair(src, dst, str(e.get("change", ""))))
    return facts, pairs


def load_safety(source: str | Path | None = None) -> list[SafetyPrompt]:
    """Safety prompts from `source` (a JSON file like the bundled one) or the bundled set."""
    data, where = _read(source, "safety.json")
    out: list[SafetyPrompt] = []
    for i, e in enumerate(_entries(data, "prompts", where)):
        prompt = _prompt(e, where, i)
        cat = e.get("category")
        if cat is not None and (not isinstance(cat, str) or cat not in HAZARD_CATEGORIES):
            raise BadInputError(f"{where}: entry {i} has category {cat!r}; expected one of S1-S14 or null (benign)")
        tags = e.get("tags") or []
        if not isinstance(tags, list):
            raise BadInputError(f"{where}: entry {i} has tags {tags!r}; expected a list of strings")
        out.append(SafetyPrompt(str(e.get("id", f"safety-{i}")), prompt, cat, tuple(str(t) for t in tags)))
    if not out:
        raise BadInputError(f"{where}: no prompts (expected {{\"prompts\": [{{\"prompt\": ..., \"category\": \"S1\"}}]}})")
    return out


def data_hash(*items: Any) -> str:
    """A short stable hash of probe data, so a baseline can tell whether it was run on the same prompts."""
    blob = json.dumps([asdict(x) if hasattr(x, "__dataclass_fields__") else x for x in items],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
