"""Each swept rule's detection range, as measured by benchmarks/severity_sweep.py.

Data, written by `python benchmarks/severity_sweep.py --ranges src/modeldebug/catalogue/ranges.py`:
do not edit by hand; re-run the sweep after a rule changes. Rendered by `modeldebug explain CODE`
and docs/rules.md under "Detection range".
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MEASURED", "RANGES", "Range"]


class Range(NamedTuple):
    """What was dialled on one setup, and where the rule fired (mild, typical, extreme, healthy twin)."""

    knob: str
    text: str


#: When and on what the ranges were measured.
MEASURED = "2026-12-06, commit 3434e21, torch 2.13.0+cpu on CPU"

#: Rule code -> its measured detection range on each setup it was swept on.
RANGES: dict[str, tuple[Range, ...]] = {
    "LRN001": (
        Range("Adam learning rate, times a good 1e-2",
              "found from lr x10 (medium) to lr x100 (high); lr x3 not found; healthy twin clean"),
    ),
    "LRN002": (
        Range("SGD+momentum learning rate on a 3-class MLP, divided from a good 1e-2",
              "found from lr /100 (high) to lr /10000 (high); lr /10 not found; healthy twin clean"),
        Range("the same on a tanh regression MLP (80 steps)",
              "lr /10 not found; lr /100 not found (the typical case: a miss); lr /10000 not found; healthy twin clean"),
    ),
    "LOP001": (
        Range("zero_grad reached every k-th step",
              "found from every 2nd step (high) to never (high); healthy twin clean"),
    ),
    "DAT001": (
        Range("every input feature multiplied by",
              "found from x10 (medium) to x1000 (high); healthy twin clean"),
    ),
    "ACT001": (
        Range("a ReLU layer's bias shifted down, in pre-activation std",
              "found from -3 std (high) to -10 std (high); -1 std not found; healthy twin clean"),
        Range("fraction of a ReLU layer's units killed by a -10 bias",
              "found from 50% of units (medium) to 90% of units (high); 25% of units not found; healthy twin clean"),
    ),
    "GRD002": (
        Range("depth of a Linear+Sigmoid stack (SGD+momentum)",
              "found from 8 sigmoid layers (high) to 13 sigmoid layers (high); 5 sigmoid layers not found (first finding: loss_not_decreasing); healthy twin clean"),
    ),
    "GRD001": (
        Range("plain SGD learning rate on a tanh regression MLP",
              "found from lr 1 (high) to lr 5 (high); lr 0.3 not found; healthy twin clean"),
        Range("ReLU RNN over 30 steps, recurrent weight std (default is about 0.1)",
              "found from std 0.25 (high) to std 0.3 (high); std 0.2 not found; healthy twin clean"),
    ),
    "DAT003": (
        Range("majority:minority ratio, weak signal, unweighted loss",
              "found from 10:1 (high) to 1000:1 (high); healthy twin clean"),
        Range("the same with a strong signal the model learns (minority recall 0.99 at 10:1, 0.93 at 100:1, 0 at 1000:1)",
              "found from 100:1 (low) to 1000:1 (medium); 10:1 not found; healthy twin clean"),
    ),
    "LSS001": (
        Range("Softmax before CrossEntropyLoss, number of classes",
              "found from 2 classes (high) to 100 classes (high); healthy twin clean"),
    ),
    "GEN001": (
        Range("training samples for a 72k-parameter MLP, 240 steps",
              "found from 256 samples (high) to 16 samples (high); healthy twin clean"),
    ),
    "WGT001": (
        Range("SGD weight decay at lr 0.1",
              "found from wd 0.5 (high) to wd 5 (high); wd 0.05 not found; healthy twin clean"),
        Range("AdamW decoupled weight decay at lr 1e-2",
              "found from wd 5 (medium) to wd 50 (high); wd 0.5 not found; healthy twin clean"),
    ),
    "CLP001": (
        Range("clip_grad_norm_ max_norm (SGD)",
              "found from max_norm 0.01 (high) to max_norm 0.001 (high); max_norm 0.1 not found (first finding: loss_not_decreasing); healthy twin clean"),
    ),
    "INI001": (
        Range("5-layer ReLU MLP, init std times He's",
              "found from std x2 (high) to std x30 (high); healthy twin clean"),
    ),
    "ACT002": (
        Range("sigmoid MLP, weights uniform(-b, b)",
              "found from b 0.5 (medium) to b 3 (high); healthy twin clean"),
    ),
    "LOS002": (
        Range("fraction of labels replaced by random ones",
              "found from 90% (medium) to 100% (high); 50% not found; healthy twin clean"),
    ),
    "LBL001": (
        Range("data sorted by label and not shuffled, fraction left in order",
              "found from 50% in order (medium) to fully sorted (high); healthy twin clean"),
    ),
}
