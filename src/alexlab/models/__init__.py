"""Networks. Plain torch: nothing here imports Lightning."""

from alexlab.models.alexnet import AlexNet, build

__all__ = ["AlexNet", "build"]
