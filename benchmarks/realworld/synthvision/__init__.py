"""A stand-in for the few torchvision names the corpus scripts use (torchvision is not installed here).

Each script's ``torchvision`` imports are rewritten to ``synthvision`` by the driver (run.sh); nothing
else in the script changes. The datasets are synthetic but learnable: each class is a fixed smooth
pattern, every sample is its class pattern shifted by up to 2 pixels plus noise, stored as uint8 the
way MNIST's PIL images are, so ``ToTensor`` and ``Normalize`` behave as they would on the real data.
Sizes come from the environment (SYNTH_TRAIN, SYNTH_TEST) so a run stays under a minute on one core.
"""

from . import datasets, transforms, utils

__all__ = ["datasets", "transforms", "utils"]
