"""Typed measures: every statistic and event capture produces, declared once.

A measure is one number (or event) a run record holds, named by where it is stored and what it is:
``module.dead_frac`` is the dead-unit fraction of a module's output, a per-entity statistic on
sampled steps; ``step.grad_norm`` is the total gradient norm, a column of every step;
``event.nonfinite`` is the event that names where a NaN/Inf first appeared. Each declaration says
which collector produces it, how it is stored, which module types it applies to and what it means.

Rules name the measures they read (``requires = (DEAD_FRAC, MODULE_MEAN, MODULE_STD)``); capture
computes only the measures that the selected rules require (``--select ACT`` takes no loss-input
statistics), plus the ``always`` ones (the step columns: cheap, and what the live progress line
shows) and those the level adds for people to read (``detailed``: every activation statistic of
every leaf module; ``comprehensive``: activation histograms). A rule that declares nothing gets
everything. The stored names (``"dead_frac"``) and event kinds (``"nonfinite"``) come from here.

This module is a leaf: it imports nothing of modeldebug's and no torch, so rules, capture and
reports can all read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ACTIVATION_HISTOGRAM",
    "ACTIVATION_STATS",
    "ALWAYS",
    "AMP_SCALED_STEP",
    "AMP_STEP_SKIPPED",
    "BATCH_MIXING_PROBE",
    "CARRIED_GRAD_NORM",
    "CATEGORICAL_PROBS_AS_LOGITS",
    "CLIP_AFTER_STEP",
    "CLIP_CALL",
    "EDGE_OPS",
    "NOGRAD_IN_FORWARD",
    "VAL_INPUT",
    "MASK_EDGES",
    "LOADER_ITERATOR_PER_BATCH",
    "CLIP_MAX",
    "CLIP_NORM",
    "CUDA_MB",
    "DATALOADER",
    "DATASET_CHANGED",
    "DATA_OVERLAP",
    "DEAD_FRAC",
    "EVAL_DROPOUT",
    "EVENTS",
    "EXCEPTION",
    "FUTURE_LEAK_PROBE",
    "FWD_EVAL_MODE",
    "FWD_TRAIN_MODE_NOGRAD",
    "GAP_PROFILE",
    "GRAD_NORM",
    "GRAPH_ADJACENCY",
    "CONV_INPUT_LAYOUT",
    "EMBEDDING_PADDING",
    "GROUP_GRAD_NORM",
    "INACTIVE_FRAC",
    "INPUT_CHANNELS",
    "INPUT_CONST_FRAC",
    "INPUT_MAX",
    "INPUT_MEAN",
    "INPUT_MIN",
    "INPUT_NONFINITE_FRAC",
    "INPUT_REUSED",
    "INPUT_STATS",
    "INPUT_STD",
    "INTERNAL_ERROR",
    "IN_FRAC_01",
    "IN_MAX",
    "IN_MEAN",
    "IN_MIN",
    "IN_NONFINITE",
    "IN_ROWSUM_DEV",
    "LABEL_COUNTS",
    "LIVE_LOSSES",
    "LOSS",
    "LOSS_CALLS",
    "LOSS_IO_STATS",
    "LR",
    "LR_SCHEDULER",
    "MEASURES",
    "MODEL_INPUT",
    "MODE_SENSITIVE",
    "MODULE_MAX",
    "MODULE_MEAN",
    "MODULE_MIN",
    "MODULE_NONFINITE",
    "MODULE_SKIPPED",
    "MODULE_STD",
    "NONFINITE",
    "N_BACKWARD",
    "OPTIMIZER",
    "PARAM_GRAD_NORM",
    "PARAM_NORM",
    "PLATEAU_STEP",
    "RELU_LIKE",
    "RSS_MB",
    "SAMPLED",
    "SOFTMAX_SATURATION",
    "SAMPLING",
    "SATURATED_FRAC",
    "SATURATING",
    "STEP_COLUMNS",
    "TGT_MAX",
    "TGT_MEAN",
    "TGT_MIN",
    "TRAINING_FLAG",
    "T_BACKWARD",
    "T_CPU",
    "T_DATA",
    "T_FORWARD",
    "T_INFERENCE",
    "T_LOADER",
    "T_OPTIMIZER",
    "T_STEP",
    "UNREGISTERED_MODULE",
    "UPDATE_RATIO",
    "VAL_LOSS",
    "WEIGHTS_LOADED",
    "WITH_PARAMS",
    "ZERO_FRAC",
    "ZERO_GRAD_BEFORE_STEP",
    "ZERO_GRAD_CALLS",
    "Measure",
    "Storage",
    "column",
    "measure",
    "resolve",
]

#: How a measure is kept: a column of the per-step row, a per-entity statistic (on the steps its
#: collector runs), a histogram row, an event, or an entity of its own (with its description in `info`).
Storage = Literal["column", "stat", "histogram", "event", "entity"]
Where = Literal["step", "param", "group", "module", "input", "loss", "event"]
Level = Literal["basic", "detailed", "comprehensive"]

#: Module types whose outputs are exactly zero for inactive units (dead-unit fraction).
RELU_LIKE = frozenset({"ReLU", "ReLU6", "Threshold", "Hardshrink", "Softshrink"})
#: Activations with a bounded output (saturated fraction).
SATURATING = frozenset({"Sigmoid", "Tanh", "Hardtanh", "Hardsigmoid"})
#: Modules whose behaviour depends on `training` (their flag is recorded).
MODE_SENSITIVE = frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
                            "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm1d", "LazyBatchNorm2d",
                            "LazyBatchNorm3d", "SyncBatchNorm", "InstanceNorm1d", "InstanceNorm2d"})
#: `applies_to` of a measure taken on leaf modules that hold parameters of their own (Linear, Conv,
#: norms): the layers whose output scale the initialisation and input rules compare.
WITH_PARAMS = "<with parameters>"


@dataclass(frozen=True)
class Measure:
    """One statistic or event of a run record.

    `id` (``where.name``) is how rules name it; `name` is the key it is stored under (a step column,
    a statistic, an event kind). `applies_to` lists the module types (or `WITH_PARAMS`) a module
    statistic is taken on at `basic`; empty means every entity of its kind. `level` is the level from
    which capture records it although no selected rule requires it (None: only when required, or
    `always`).
    """

    where: Where
    name: str
    producer: str
    storage: Storage
    doc: str
    applies_to: frozenset[str] = frozenset()
    always: bool = False
    level: Level | None = None
    id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.where}.{self.name}")  # asked on hot paths: computed once

    def applies(self, module_type: str | None, has_params: bool) -> bool:
        """Is this module statistic taken on a leaf module of `module_type`?"""
        if not self.applies_to:
            return True
        return (module_type in self.applies_to) or (has_params and WITH_PARAMS in self.applies_to)

    def __str__(self) -> str:
        return self.id


MEASURES: dict[str, Measure] = {}


def measure(where: Where, name: str, producer: str, storage: Storage, doc: str, *,
            applies_to: Iterable[str] = (), always: bool = False, level: Level | None = None) -> Measure:
    """Declare a measure (once: a second declaration of the same id is an error)."""
    m = Measure(where, name, producer, storage, doc, frozenset(applies_to), always, level)
    if m.id in MEASURES:
        raise ValueError(f"measure {m.id} is declared twice")
    MEASURES[m.id] = m
    return m


def column(name: str, producer: str, doc: str) -> Measure:
    """A column of the per-step row: recorded every step, whatever the selection."""
    return measure("step", name, producer, "column", doc, always=True)


def resolve(item: Measure | str) -> Measure:
    """The declaration for a measure or its id (``"module.dead_frac"``); an unknown id is an error."""
    if isinstance(item, Measure):
        return item
    m = MEASURES.get(item)
    if m is None:
        known = ", ".join(sorted(MEASURES))
        raise KeyError(f"unknown measure {item!r}: a rule's `requires` names declared measures ({known})")
    return m


# -- every step: the step row -------------------------------------------------------------------------
LOSS = column("loss", "backward", "mean of the losses backward() was called on in the step (NaN when not finite)")
LR = column("lr", "optimizer", "learning rate of the first parameter group of the optimizer that stepped")
N_BACKWARD = column("n_backward", "backward", "backward passes in the step (more than 1: gradient accumulation)")
GRAD_NORM = column("grad_norm", "gradients", "total L2 norm of every tracked gradient, before optimizer.step(); "
                                             "non-finite when any gradient is: the step's non-finite flag")
T_DATA = column("t_data", "timing", "seconds from the end of the previous step to the first forward pass")
T_INFERENCE = column("t_inference", "timing", "seconds of t_data from the first forward pass without gradients in it "
                     "(a teacher's or target network's inference, an evaluation, one in eval mode written "
                     "without no_grad) to the step's first forward pass")
T_FORWARD = column("t_forward", "timing", "seconds of the forward pass and the loss")
T_BACKWARD = column("t_backward", "timing", "seconds inside backward()")
T_OPTIMIZER = column("t_optimizer", "timing", "seconds inside optimizer.step()")
T_STEP = column("t_step", "timing", "seconds of the whole step")
RSS_MB = column("rss_mb", "memory", "process resident memory, MiB")
CUDA_MB = column("cuda_mb", "memory", "CUDA memory held by tensors, MiB (allocator counter: no sync)")
T_LOADER = column("t_loader", "loop", "seconds inside a DataLoader iterator's __next__ during the step")
ZERO_GRAD_CALLS = column("zero_grad_calls", "loop", "optimizer/module zero_grad() calls during the step")
CARRIED_GRAD_NORM = column("carried_grad_norm", "loop", "norm of gradients left from the previous step at the "
                                                        "first backward pass, when no zero_grad ran")
CLIP_NORM = column("clip_norm", "loop", "the total norm clip_grad_norm_ saw before clipping")
CLIP_MAX = column("clip_max", "loop", "the max_norm clip_grad_norm_ was given")
LIVE_LOSSES = column("live_losses", "loop", "loss tensors of the previous 7 steps something still holds")
FWD_EVAL_MODE = column("fwd_eval_mode", "modes", "forward passes with grad enabled while the model was in eval mode")
FWD_TRAIN_MODE_NOGRAD = column("fwd_train_mode_nograd", "modes",
                               "forward passes under no_grad while the model was in train mode")
SAMPLED = column("sampled", "sampler", "1 when the per-layer detail (activations, per-parameter norms) was taken")
T_CPU = column("t_cpu", "timing", "process CPU seconds of the whole step, all threads (other processes on the "
               "machine add wall time, not CPU time)")
#: The step row's columns, in the record's order.
STEP_COLUMNS: tuple[Measure, ...] = (
    LOSS, LR, N_BACKWARD, GRAD_NORM, T_DATA, T_FORWARD, T_BACKWARD, T_OPTIMIZER, T_STEP, RSS_MB, CUDA_MB, T_LOADER,
    ZERO_GRAD_CALLS, CARRIED_GRAD_NORM, CLIP_NORM, CLIP_MAX, LIVE_LOSSES, FWD_EVAL_MODE, FWD_TRAIN_MODE_NOGRAD, SAMPLED,
    T_CPU, T_INFERENCE,
)
GROUP_GRAD_NORM = measure(
    "group", "grad_norm", "gradients", "stat",
    "gradient norm of one optimizer parameter group (or of one model's parameters without an optimizer), "
    "every step; recorded when there are at least two groups (one group's norm is the step's grad_norm)",
    always=True)

# -- sampled steps: per parameter -------------------------------------------------------------------------
PARAM_GRAD_NORM = measure("param", "grad_norm", "gradients", "stat",
                          "L2 norm of the parameter's gradient (no row: no gradient), on sampled steps and on "
                          "steps where the set of parameters with a gradient changed")
PARAM_NORM = measure("param", "param_norm", "updates", "stat",
                     "L2 norm of the parameter after the optimizer step (without an optimizer object: at the "
                     "step's backward pass)")
UPDATE_RATIO = measure("param", "update_ratio", "updates", "stat",
                       "‖Δw‖/‖w‖ of the optimizer step: how far the step moved the weights")

# -- sampled steps: per module (training forward passes, leaf modules) ------------------------------------
MODULE_MEAN = measure("module", "mean", "activations", "stat", "mean of the module's output",
                      applies_to=(WITH_PARAMS,))
MODULE_STD = measure("module", "std", "activations", "stat", "standard deviation of the module's output",
                     applies_to=(WITH_PARAMS,))
MODULE_MIN = measure("module", "min", "activations", "stat", "smallest output value", level="detailed")
MODULE_MAX = measure("module", "max", "activations", "stat", "largest output value", level="detailed")
ZERO_FRAC = measure("module", "zero_frac", "activations", "stat", "fraction of output values exactly zero",
                    applies_to=RELU_LIKE, level="detailed")
MODULE_NONFINITE = measure("module", "nonfinite", "activations", "stat",
                           "1.0 when any output value is NaN/Inf, else 0.0", level="detailed")
DEAD_FRAC = measure("module", "dead_frac", "activations", "stat",
                    "fraction of units zero for every sample (and position) of the batch", applies_to=RELU_LIKE)
SATURATED_FRAC = measure("module", "saturated_frac", "activations", "stat",
                         "fraction of outputs within 1% of a bound (|tanh| > 0.99, sigmoid < 0.01 or > 0.99)",
                         applies_to=SATURATING)
TRAINING_FLAG = measure("module", "training", "modes", "stat",
                        "the module's training flag (1.0/0.0) during training forward passes",
                        applies_to=MODE_SENSITIVE)
INACTIVE_FRAC = measure("module", "inactive_frac", "activations", "stat",
                        "fraction of units non-zero on at most 1% of the samples (and positions) of the batch: "
                        "nearly dead, where dead_frac counts only units zero on every one",
                        applies_to=RELU_LIKE, level="detailed")
ACTIVATION_HISTOGRAM = measure("module", "histogram", "activations", "histogram",
                               "histogram of the module's output (over at most 65,536 values)", level="comprehensive")

#: The activation statistics, in the order `capture.stats.activation_stats` computes them.
ACTIVATION_STATS: tuple[Measure, ...] = (MODULE_MEAN, MODULE_STD, MODULE_MIN, MODULE_MAX, ZERO_FRAC,
                                         MODULE_NONFINITE, DEAD_FRAC, INACTIVE_FRAC)

# -- sampled steps: the model's input batch -----------------------------------------------------------------
_INPUT_DOCS = {
    "mean": "mean of the model's input batch", "std": "standard deviation of the input batch",
    "min": "smallest finite input value", "max": "largest finite input value",
    "nonfinite_frac": "fraction of input values that are NaN/Inf",
    "const_frac": "fraction of input features equal on every sample of the batch",
    **{f"ch{i}_mean": f"mean of channel {i} of a 4-d input with at most 4 channels" for i in range(4)},
    **{f"ch{i}_std": f"standard deviation of channel {i} of a 4-d input with at most 4 channels" for i in range(4)},
}
#: The input statistics, in the order `capture.stats.input_stats` computes them.
INPUT_STATS: tuple[Measure, ...] = tuple(measure("input", n, "inputs", "stat", d) for n, d in _INPUT_DOCS.items())
INPUT_MEAN, INPUT_STD, INPUT_MIN, INPUT_MAX, INPUT_NONFINITE_FRAC, INPUT_CONST_FRAC = INPUT_STATS[:6]
INPUT_CHANNELS = INPUT_STATS[6:]
INPUT_REUSED = measure("input", "reused", "inputs", "stat",
                       "1 when the input batch is the very tensor of the previous sampled step, unchanged (built "
                       "once and fed whole every step), else 0")
MODEL_INPUT = measure("input", "entity", "inputs", "entity",
                      "each model's input as an entity: its shape and dtype at the first sampled step")

# -- the loss calls ---------------------------------------------------------------------------------------------
_LOSS_DOCS = {
    "in_min": "smallest finite value the loss received as input", "in_max": "largest finite loss input",
    "in_mean": "mean loss input", "in_rowsum_dev": "largest |row sum - 1| of the loss input over the class axis",
    "in_frac_01": "fraction of loss input values in [0, 1]", "in_nonfinite": "fraction of loss inputs that are NaN/Inf",
    "tgt_min": "smallest target value", "tgt_max": "largest target value", "tgt_mean": "mean target value",
}
#: The loss input/target statistics, in the order `capture.losses.loss_io_stats` computes them; taken
#: on the first call of each loss in each phase, then on sampled steps.
LOSS_IO_STATS: tuple[Measure, ...] = tuple(
    measure("loss", n, "losses", "stat", d, level="detailed" if n in ("in_mean", "in_nonfinite") else None)
    for n, d in _LOSS_DOCS.items())
IN_MIN, IN_MAX, IN_MEAN, IN_ROWSUM_DEV, IN_FRAC_01, IN_NONFINITE, TGT_MIN, TGT_MAX, TGT_MEAN = LOSS_IO_STATS
LOSS_CALLS = measure("loss", "entity", "losses", "entity",
                     "each functional loss and phase as an entity: input/target shapes and dtypes, keyword arguments")
LABEL_COUNTS = measure("loss", "label_counts", "losses", "histogram",
                       "counts of each class index in an integer target, plus a bin for targets outside [0, C)")
VAL_LOSS = measure("loss", "val_loss", "losses", "stat", "the value of each loss call made without grad")

# -- events -------------------------------------------------------------------------------------------------------
OPTIMIZER = measure("event", "optimizer", "registry", "event", "an optimizer's type and parameter groups",
                    always=True)
NONFINITE = measure("event", "nonfinite", "nonfinite", "event",
                    "the first non-finite loss or gradient and where it came from (a replay of the step)")
EXCEPTION = measure("event", "exception", "crash", "event", "a crash: type, message, module, phase, file, line",
                    always=True)
BATCH_MIXING_PROBE = measure("event", "batch_mixing_probe", "probes", "event",
                             "one-time probe on a private copy: does sample 0's output depend on other samples?")
GAP_PROFILE = measure("event", "gap_profile", "gaps", "event",
                      "where the time between steps went: the user's lines a stack sampler saw there, and their shares")
DATA_OVERLAP = measure("event", "data_overlap", "fingerprints", "event",
                       "train/validation sample fingerprints: counts and overlap")
INTERNAL_ERROR = measure("event", "internal_error", "tracer", "event", "a probe of modeldebug's own that failed",
                         always=True)
MODULE_SKIPPED = measure("event", "module_skipped", "tracer", "event",
                         "a module (or input) that cannot be measured, and why", always=True)
AMP_STEP_SKIPPED = measure("event", "amp_step_skipped", "amp", "event",
                           "a step a mixed-precision GradScaler skipped (non-finite scaled gradients): the scale "
                           "it overflowed at; no step row is written for it", always=True)
AMP_SCALED_STEP = measure("event", "amp_scaled_step", "amp", "event",
                          "an optimizer step taken on gradients a GradScaler still scaled (`scaler.scale(loss).backward()` "
                          "then `optimizer.step()`, without `scaler.step` or `scaler.unscale_`): the first such step, the "
                          "scale, and the optimizer", always=True)
EVAL_DROPOUT = measure("event", "eval_dropout", "probes", "event",
                       "one-time probe on a private copy at the first evaluation pass: the functional dropouts that "
                       "still drop in eval mode, with the user's line and whether `training` was passed")
FUTURE_LEAK_PROBE = measure("event", "future_leak_probe", "probes", "event",
                            "one-time probe on a private copy, for a next-token objective (the target is the ids "
                            "shifted by one): does the output at a position depend on the positions after it?")
PLATEAU_STEP = measure("event", "plateau_step", "loop", "event",
                       "a ReduceLROnPlateau.step(metric) call: the metric, the scheduler's mode, and the learning "
                       "rates before and after it")
LR_SCHEDULER = measure("event", "lr_scheduler", "loop", "event",
                       "each learning-rate scheduler built while watching, at the end of the run: its type, base rates, "
                       "how many times it was stepped, its last rates, and the optimizer steps taken")
ZERO_GRAD_BEFORE_STEP = measure("event", "zero_grad_before_step", "loop", "event",
                                "an optimizer step taken after a zero_grad() that followed the step's backward pass "
                                "(the first 10): the zero_grad's line, and how many of the optimizer's parameters "
                                "still had a gradient", always=True)
CLIP_AFTER_STEP = measure("event", "clip_after_step", "loop", "event",
                          "a clip_grad_norm_ call after an optimizer step and before the next backward pass (the "
                          "first 10): its line, max_norm, and the norm of the gradients the step had already used",
                          always=True)
CLIP_CALL = measure("event", "clip_call", "loop", "event",
                    "the run's first clip_grad_norm_ call (its line, max_norm and the type of what it was given), and "
                    "a second event if a later call is given the same iterator object (exhausted after its first use)",
                    always=True)
WEIGHTS_LOADED = measure("event", "weights_loaded", "loop", "event",
                         "a watched model's load_state_dict() after its first step: a checkpoint restored "
                         "(the best validation pass's weights, kept by early stopping)")
GRAPH_ADJACENCY = measure("event", "graph_adjacency", "inputs", "event",
                          "once per model, a (nodes x nodes) matrix passed beside its node features (a graph's "
                          "adjacency): its row sums, degrees and values, and how the row sums follow the degree")
CONV_INPUT_LAYOUT = measure("event", "conv_input_layout", "inputs", "event",
                            "on the first sampled training steps, the input of each model's first Conv1d or Conv2d: "
                            "the mean squared differences at lags 1 to 2 x in_channels + 1 along its last axis "
                            "(channels-last data reshaped to channels-first cycles through its channels there)")
EMBEDDING_PADDING = measure("event", "embedding_padding", "inputs", "event",
                            "on the first sampled training passes, each nn.Embedding built with a padding_idx: its "
                            "input's shape, whether it holds one id per sample, and the share of ids that are the "
                            "padding index (a row that never gets a gradient)")
SOFTMAX_SATURATION = measure("event", "softmax_saturation", "loop", "event",
                             "once, in the loss graph of the first sampled step: each softmax over the last axis of "
                             "a tensor of 3 or more axes (attention weights): the share of the rows of the second "
                             "half of its query axis whose largest probability is above 0.99, and their median")
MASK_EDGES = measure("event", "mask_edges", "losses", "event",
                     "a dense class target's borders (first 3 sampled training calls of cross_entropy/nll_loss on "
                     "[B, C, H, W] logits, first 8 samples): positions whose two neighbours differ by 2+ class ids, "
                     "and how many of them hold a class strictly between (a mask resized by interpolation)")
EDGE_OPS = measure("event", "edge_ops", "loop", "event",
                   "once, in the loss graph of the first sampled step: how many nodes of each operation whose "
                   "derivative is infinite at the edge of its domain (acos, asin, atanh at +-1; sqrt, rsqrt, pow, "
                   "log at 0) it holds")
CUSTOM_BACKWARD_CHECK = measure("event", "custom_backward_check", "loop", "event",
                               "once per custom torch.autograd.Function class found in the loss graph of the first "
                               "3 sampled steps: its backward against central differences of its forward, on a "
                               "float64 input of its own (`relative_error`), or why it was not checked",
                               always=True)
VAL_INPUT = measure("event", "val_input", "inputs", "event",
                    "the input batch of a trained model's first 3 evaluation passes (without gradients, or in "
                    "eval mode written without no_grad): its mean, std, min and max, as the training input's")
NOGRAD_IN_FORWARD = measure("event", "nograd_in_forward", "modes", "event",
                            "once per module: a layer with parameters called with autograd off inside a "
                            "training forward pass (a torch.no_grad() block in forward(), on a sampled step)")
ANOMALY_MODE = measure("event", "anomaly_mode", "loop", "event",
                      "each sampled step that ended with torch.autograd's anomaly detection on "
                      "(set_detect_anomaly(True) / detect_anomaly()): whether it also checks for NaN",
                      always=True)
NOGRAD_TRAIN_PASS = measure("event", "nograd_train_pass", "modes", "event",
                            "the first 8 forward passes of a model under no_grad while it was in train mode: the "
                            "model and the batch size (a whole training set at once is a statistics pass)",
                            always=True)
DATALOADER = measure("event", "dataloader", "loop", "event",
                     "once per data set a DataLoader serves: its worker processes, batch size, whether workers "
                     "persist between epochs, and whether the data set holds its samples as tensors in memory",
                     always=True)
LOADER_ITERATOR_PER_BATCH = measure("event", "loader_iterator_per_batch", "loop", "event",
                                    "a training DataLoader read through a new iterator for (nearly) every batch, as "
                                    "next(iter(loader)) in the step loop does (once, after its first 20 batches): the "
                                    "line, its worker processes, and how many of those batches began an iterator",
                                    always=True)
DATASET_CHANGED = measure("event", "dataset_changed", "loop", "event",
                          "a training data set's in-memory array (one row per sample) whose values changed between "
                          "the starts of two epochs after the first: the share of sampled cells that changed, "
                          "that held data before (not empty cells a cache fills), zeros and spread before and "
                          "after (capture/dataset_drift.py)")
SAMPLING = measure("event", "sampling", "sampler", "event",
                   "the sampling interval widened or narrowed to keep the sampled steps within the level's time "
                   "budget: the new interval, what one sample costs (in unsampled steps) and the budget",
                   always=True)
CATEGORICAL_PROBS_AS_LOGITS = measure("event", "categorical_probs_as_logits", "categorical_init", "event",
                                      "a torch.distributions.Categorical built (autograd on, first 20) with logits "
                                      "that are probabilities (in [0, 1], rows summing to 1): sampled from a softmax "
                                      "of probabilities", always=True)
UNREGISTERED_MODULE = measure("event", "unregistered_module", "unregistered", "event",
                              "a module with trainable parameters called in a watched model's training forward pass "
                              "(sampled steps) that is not one of its registered submodules and no optimizer holds, "
                              "whose parameters got a gradient: kept in a plain list or dict, or created in forward()")
EVENTS: tuple[Measure, ...] = (OPTIMIZER, NONFINITE, EXCEPTION, BATCH_MIXING_PROBE, DATA_OVERLAP, INTERNAL_ERROR,
                               MODULE_SKIPPED, AMP_STEP_SKIPPED, AMP_SCALED_STEP, SAMPLING, PLATEAU_STEP, LR_SCHEDULER, EVAL_DROPOUT, FUTURE_LEAK_PROBE,
                               DATALOADER, ZERO_GRAD_BEFORE_STEP, CLIP_AFTER_STEP, CLIP_CALL, LOADER_ITERATOR_PER_BATCH,
                               UNREGISTERED_MODULE,
                               CATEGORICAL_PROBS_AS_LOGITS)

#: Measures recorded whatever the selection.
ALWAYS: frozenset[str] = frozenset(m.id for m in MEASURES.values() if m.always)
