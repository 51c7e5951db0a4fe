"""torchvision.utils.save_image, kept as a no-op: the corpus measures training, not pictures."""

__all__ = ["save_image"]


def save_image(tensor, fp, **kwargs) -> None:
    """Accepts the arguments torchvision's does and writes nothing."""
