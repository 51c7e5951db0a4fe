"""Plain PyTorch training scripts with one real bug each, for `modeldebug demo`.

Each file runs on its own (`python dead_relu.py`); nothing in them knows about modeldebug.
"""

from pathlib import Path

__all__ = ["DEMOS", "demo_path"]

DEMOS = {
    "dead-relu": "a classifier whose hidden ReLU layer is dead from initialisation (bias -10)",
    "exploding": "a regression MLP trained with a learning rate far too high: gradients explode, loss turns NaN",
    "detached": "an encoder cut off from the loss by .detach(): its weights never update",
    "nan-log": "a log() in forward() that turns negative activations into NaN",
    "shape-crash": "a CNN whose Linear head has the wrong in_features: the run crashes",
}


def demo_path(name: str) -> Path:
    return Path(__file__).with_name(name.replace("-", "_") + ".py")
