"""Scoring a short answer against accepted answers, leniently (the default) or strictly.

- lenient: an accepted answer appears in the output as whole words (word boundaries, so "12" does not
  match "120"), case-insensitive, with number words read as digits ("twelve" = "12"), thousands
  separators and accents ignored. "The capital of France is Paris." passes.
- strict: the first line of the output, trimmed of surrounding spaces, quotes and final punctuation,
  equals an accepted answer (same normalisation). "Paris" passes, "Paris is the capital." does not.

A model that answers in sentences is right, so lenient decides pass or fail by default
(`BehaviourConfig.scoring`, `--scoring strict` for the other); both are computed and shown, because
they disagree for a reason: strict failures with lenient passes mean the model knows but rambles
(or the serving code returns the prompt too); lenient passes on a list of every capital mean it
guesses.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["SCORINGS", "answer_line", "lenient_match", "match", "normalize", "strict_match"]

#: The ways an answer can be scored; the first is the default.
SCORINGS = ("lenient", "strict")

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
          "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_WORDS: dict[str, int] = {w: i for i, w in enumerate(_UNITS)} | _TENS | {"hundred": 100, "thousand": 1000}
_NUMBER_WORDS = re.compile(r"\b(?:(" + "|".join(_TENS) + r")[- ](" + "|".join(_UNITS[1:10]) + r")|"
                           r"(?:one |a )?(hundred|thousand)|(" + "|".join(sorted(_WORDS, key=len, reverse=True)) + r"))\b")
_TRIM = " \t\"'`*_.,;:!?()[]"


def _number_words_to_digits(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return str(_TENS[m.group(1)] + _WORDS[m.group(2)])
        return str(_WORDS[m.group(3) or m.group(4)])

    return _NUMBER_WORDS.sub(sub, text)


def normalize(text: str) -> str:
    """Casefold, accents dropped, number words to digits, thousands separators dropped, spaces collapsed."""
    t = unicodedata.normalize("NFKD", text.casefold())
    t = _number_words_to_digits("".join(ch for ch in t if not unicodedata.combining(ch)))
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)  # 1,000 -> 1000
    t = re.sub(r"(?<=\d)\.0+\b", "", t)  # 12.0 -> 12
    return re.sub(r"\s+", " ", t).strip()


def answer_line(output: str) -> str:
    """The first non-empty line of `output`, trimmed of quotes and final punctuation."""
    for line in output.splitlines():
        if line.strip():
            return line.strip().strip(_TRIM)
    return ""


def strict_match(output: str, answers: Iterable[str]) -> bool:
    """True when the answer line is exactly one of `answers` (case-insensitive)."""
    line = normalize(answer_line(output))
    return bool(line) and any(line == normalize(a).strip(_TRIM) for a in answers)


def lenient_match(output: str, answers: Iterable[str]) -> bool:
    """True when one of `answers` occurs in `output` as whole words (number words count as digits)."""
    text = normalize(output)
    for a in answers:
        a_norm = normalize(a).strip(_TRIM)
        if a_norm and re.search(r"(?<![\w.])" + re.escape(a_norm) + r"(?![\w]|\.\d)", text):
            return True
    return False


def match(output: str, answers: Iterable[str], scoring: str = "lenient") -> bool:
    """`lenient_match` or `strict_match`, as `scoring` says."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring {scoring!r}: expected one of {', '.join(SCORINGS)}")
    return strict_match(output, answers) if scoring == "strict" else lenient_match(output, answers)
