"""Catalogue: every code of every family, looked up and selected in one place."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import BadInputError, UnknownRuleError
from .spec import Option, Spec

__all__ = ["Catalogue"]


class Catalogue:
    """Specs by code, their options by name, and the selectors users write (`--select GRD,dead_activations`)."""

    def __init__(self, specs: Iterable[Spec] = (), options: Iterable[Option] = ()) -> None:
        self._specs: dict[str, Spec] = {}
        self._options: dict[str, tuple[Option, str | None]] = {}
        for o in options:
            self._add_option(o, None)
        for s in specs:
            self.add(s, strict=False)  # the built-ins' documentation is enforced by tests/test_catalogue.py

    # -- declaring ---------------------------------------------------------------------------------
    def add(self, spec: Spec, *, strict: bool = True) -> Spec:
        """Declare `spec`; a second spec with the same code, or a bad spec, is refused."""
        problems = spec.problems() if strict else []
        if problems:
            raise BadInputError(f"rule {spec.code} ({spec.source}): {'; '.join(problems)}")
        old = self._specs.get(spec.code)
        if old is not None and old != spec:
            raise BadInputError(f"rule code {spec.code} of {spec.source} is already used by {old.source} "
                                f"({old.kind}): pick another code")
        for other in self._specs.values():
            if other.code != spec.code and other.family == spec.family and other.kind == spec.kind:
                raise BadInputError(f"rule {spec.code} ({spec.source}): kind {spec.kind!r} is already {other.code}'s")
        for o in spec.options:
            self._add_option(o, spec.code)
        self._specs[spec.code] = spec
        return spec

    def _add_option(self, option: Option, code: str | None) -> None:
        known = self._options.get(option.name)
        if known is not None and known[1] != code:
            raise BadInputError(f"option {option.name!r} of {code or 'the common options'} is already declared "
                                f"by {known[1] or 'the common options'}")
        self._options[option.name] = (option, code)

    # -- looking up --------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Spec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.code))

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, code: object) -> bool:
        return code in self._specs

    def __getitem__(self, code: str) -> Spec:
        return self._specs[code]

    def family(self, family: str) -> list[Spec]:
        return [s for s in self if s.family == family]

    def find(self, selector: str, *, family: str | None = None) -> Spec:
        """The spec named by code (GRD001), kind (exploding_gradients) or name (exploding-gradients).

        A kind several families share resolves to `family`'s spec, else to the training family's.
        """
        s = selector.strip()
        if s.upper() in self._specs:
            return self._specs[s.upper()]
        hits = [sp for sp in self if sp.kind == s or sp.name == s.lower()]
        if family is not None:
            hits = [sp for sp in hits if sp.family == family] or hits
        if hits:
            return next((sp for sp in hits if sp.family == "training"), hits[0])
        raise UnknownRuleError(f"no rule {selector!r}{self._hint(s)}")

    def _hint(self, selector: str) -> str:
        prefixed = sorted(c for c in self._specs if c.startswith(selector.upper())) if selector else []
        if len(prefixed) > 1:  # a family's prefix (GRD): the codes it names, not the nearest one
            shown = ", ".join(prefixed[:12]) + (", ..." if len(prefixed) > 12 else "")
            return f": {selector.upper()} names {len(prefixed)} rules ({shown}); explain one of them"
        close = difflib.get_close_matches(selector.upper(), list(self._specs), n=1) or \
            difflib.get_close_matches(selector, [sp.kind for sp in self], n=1)
        return f" (did you mean {close[0]}?)" if close else " (`modeldebug rules` lists them)"

    @staticmethod
    def matches(spec: Spec, selector: str) -> bool:
        """A selector is a code, a code prefix (GRD, ONX1), a kind, a kebab name or a family."""
        s = selector.strip()
        return (spec.code.startswith(s.upper()) or spec.kind == s or spec.name == s.lower()
                or spec.family == s.lower())

    def select(self, select: Iterable[str] = (), ignore: Iterable[str] = (), *,
               family: str | tuple[str, ...] | None = None) -> list[Spec]:
        """The specs a `--select`/`--ignore` pair keeps (of one family when given).

        A selector that matches nothing anywhere is an error; so is a selection that keeps nothing of
        `family` while it names codes of other families (`report --select ONX` on a training record),
        `family` may be several families (training rules and plugins judge the same records).
        """
        select, ignore = [s for s in select if s.strip()], [s for s in ignore if s.strip()]
        for s in [*select, *ignore]:
            if not any(self.matches(sp, s) for sp in self):
                raise UnknownRuleError(f"no rule matches {s!r}{self._hint(s)}: use a code (GRD001), a prefix (GRD), "
                                       "a kind or a family")
        families = (family,) if isinstance(family, str) else family
        pool = [sp for sp in self if families is None or sp.family in families]
        chosen = [sp for sp in pool if not select or any(self.matches(sp, s) for s in select)]
        chosen = [sp for sp in chosen if not any(self.matches(sp, s) for s in ignore)]
        if select and not chosen and families is not None:
            others = sorted({sp.family for sp in self if any(self.matches(sp, s) for s in select)})
            raise BadInputError(
                f"--select {','.join(select)} names no {' or '.join(families)} rule: those codes are found by "
                + " and ".join(f"{f} ({self._where(f)})" for f in others))
        return chosen

    @staticmethod
    def _where(family: str) -> str:
        from .spec import FAMILIES

        return FAMILIES[family]

    # -- options -----------------------------------------------------------------------------------
    def option(self, name: str) -> Option:
        """The option called `name`; a misspelled name is an error, never a silent default."""
        try:
            return self._options[name][0]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._options), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BadInputError(f"no rule option {name!r}{hint}") from None

    def options(self) -> list[tuple[Option, str | None]]:
        """Every option with the code that declares it (None: shared by many rules)."""
        return sorted(self._options.values(), key=lambda oc: oc[0].name)

    def check_options(self, values: dict[str, Any]) -> dict[str, Any]:
        """`values` checked and converted by their options; an unknown name or a bad value raises."""
        out = {}
        for name, value in values.items():
            try:
                out[name] = self.option(name).check(value)
            except ValueError as exc:
                raise BadInputError(str(exc)) from None
        return out
