"""What a prompt asks: its key tokens, so that a shortened or rephrased prompt still asks the same question.

Complaint reproduction shrinks a prompt word by word; without a guard it ends with prompts that no
longer ask anything ("homework.", "kilogram") but still "reproduce" a missing answer. The key
tokens of a question are its numbers (digits and number words), its operators (`+ - * / = ^ %`,
never dropped), its question words (what, how, many, ...) and its content words: every word that
is not a function word, a politeness word or filler. When the example has several sentences, the
keys come from the ones that end with "?" (the question), else from all of them.

A candidate prompt `asks` the question when it holds every key token as often as the question does
(case-insensitive; a word with two letters swapped, as the typo perturbation makes, still counts).
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["asks", "key_tokens", "missing", "question_text", "strip_punctuation"]

_OPERATOR = r"[+\-*/×÷=^%<>±]"
# An operator stands between numbers or spaces ("7 + 5", "7+5", "50%"); a hyphen inside a word is not one.
_OPERATORS = re.compile(rf"(?:(?<=\d)|(?<=\s)|^){_OPERATOR}(?=\s|\d|$)|(?<=\d){_OPERATOR}")
_TOKENS = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)*")
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million "
    "billion half quarter dozen".split())
_QUESTION = frozenset("what how many much which who whom whose where when why".split())
_STOP = frozenset(
    # function words
    "a an the of to in on at by for from with about as into onto over under and or but nor so if than then that "
    "this these those there here it its is are was were be been being am do does did have has had will would can "
    "could should may might must shall i you he she we they me him her us them my your his our their mine yours "
    "i'm it's that's there's what's let's don't doesn't isn't aren't can't won't am also just only very really "
    "some any all each every such not no yes".split()
    # politeness, filler and asking verbs that do not change the question
    + "please kindly thanks thank hey hi hello ok okay well um uh quick quickly question questions tell know "
      "wondering wonder like want need help curious asking ask say".split())


def question_text(example: str) -> str:
    """The part of `example` that asks: its sentences ending with "?", or all of it when none does."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", example.strip()) if s]
    asked = [s for s in sentences if s.rstrip().endswith("?")]
    return " ".join(asked) if asked else example


def key_tokens(example: str) -> Counter[str]:
    """The tokens a prompt must keep to ask the question of `example` (with their counts)."""
    text = question_text(example)
    keys: Counter[str] = Counter(m.group(0) for m in _OPERATORS.finditer(text))
    for tok in _TOKENS.findall(text.replace("’", "'")):
        low = tok.casefold()
        if tok[0].isdigit() or low in _NUMBER_WORDS or low in _QUESTION or low not in _STOP:
            keys[low] += 1
    return keys


def _tokens(prompt: str) -> Counter[str]:
    found: Counter[str] = Counter(m.group(0) for m in _OPERATORS.finditer(prompt))
    found.update(t.casefold() for t in _TOKENS.findall(prompt.replace("’", "'")))
    return found


def _same_word(a: str, b: str) -> bool:
    return a == b or (len(a) >= 4 and len(a) == len(b) and sorted(a) == sorted(b))


def missing(prompt: str, keys: Counter[str]) -> list[str]:
    """The key tokens `prompt` lacks (a typo of a word counts as the word)."""
    have = _tokens(prompt)
    out = []
    for key, need in keys.items():
        got = have.get(key, 0)
        if got < need and len(key) >= 4:
            got += sum(c for t, c in have.items() if t != key and _same_word(key, t))
        if got < need:
            out.append(key)
    return out


def asks(prompt: str, keys: Counter[str]) -> bool:
    """True when `prompt` still holds every key token of the question."""
    return not missing(prompt, keys)


def strip_punctuation(text: str) -> str:
    """`text` without sentence punctuation; operators, signs and decimal points are kept ("7 + 5", "2.5")."""
    return re.sub(r"[.,](?!\d)|(?<!\d)[.,]|[!?;:\"“”‘’…]|(?<![\w])'|'(?![\w])", "", text)
