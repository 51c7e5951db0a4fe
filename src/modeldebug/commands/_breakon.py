"""The conditions `--break-on` / `watch(break_on=...)` accept, checked without loading PyTorch.

Only what can be judged at every step from numbers the tracer already holds is accepted (`ONLINE`);
a catalogue code judged from the whole run is refused with one line that lists what is supported.
The judging itself is in `modeldebug.capture.breakpoints`.
"""

from __future__ import annotations

import argparse

from ..errors import BadInputError

__all__ = ["ALIASES", "ONLINE", "break_on_option", "parse_break_on", "positive_steps", "unique"]

#: What can be judged step by step: the condition name, and what it stops on.
ONLINE: dict[str, str] = {
    "nonfinite": "the loss or the total gradient norm is NaN or Inf (NUM001)",
    "loss_spike": "the loss jumps to lr_jump_factor (2x) its recent median, undoing more than half of the "
                  "progress made, or turns non-finite",
    "NUM001": "the loss or the total gradient norm is NaN or Inf",
    "GRD001": "the total gradient norm is above grad_growth (100x) its median over the first 5 steps",
    "LOS001": "the smoothed loss is above loss_divergence (2x) its best and has lost half of the progress made",
    "LOP001": "gradients carried over an optimizer step (no zero_grad) a second time",
}
ALIASES = {"nonfinite": "NUM001"}  # the same check, reported under the catalogue's code


def _supported() -> str:
    return ", ".join(ONLINE)


def parse_break_on(value: str | list[str] | tuple[str, ...] | None, flag: str = "--break-on") -> tuple[str, ...]:
    """The conditions of `--break-on` / `break_on=` (codes upper-cased, kinds of online codes resolved).

    Raises BadInputError (one line naming the value and listing the supported conditions)."""
    if value is None:
        return ()
    items = [part for v in ([value] if isinstance(value, str) else value) for part in str(v).split(",")]
    out: list[str] = []
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        if name.lower() in ONLINE:
            out.append(name.lower())
            continue
        from ..catalogue import CATALOGUE

        try:
            spec = CATALOGUE.find(name)
        except BadInputError:
            raise BadInputError(f"{flag} {name!r} is not a condition modeldebug knows: use one of "
                                f"{_supported()}") from None
        if spec.code not in ONLINE:
            raise BadInputError(f"{flag} {name!r}: {spec.code} ({spec.kind}) is judged from the whole run, "
                                f"not step by step, so it cannot stop the run; supported: {_supported()}")
        out.append(spec.code)
    if not out:
        raise BadInputError(f"{flag} {value!r} names no condition: use one of {_supported()}")
    return unique(out)


def unique(conditions: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Each condition once (`nonfinite` and `NUM001` are one check: the first name given is kept)."""
    seen: dict[str, str] = {}
    for c in conditions:
        seen.setdefault(ALIASES.get(c, c), c)
    return tuple(seen.values())


def break_on_option(value: str) -> tuple[str, ...]:
    """The argparse type of `--break-on`: a bad condition fails before the script runs (one line, exit 2)."""
    try:
        return parse_break_on(value)
    except BadInputError as exc:
        raise argparse.ArgumentTypeError(exc.message.removeprefix("--break-on ")) from None


def positive_steps(value: str) -> int:
    """The argparse type of `--max-steps`."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of steps: give a whole number of 1 or more")
    return n
