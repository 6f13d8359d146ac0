"""Class-conditional GANs for ganforge: ``cgan`` (MLP) and ``cdcgan`` (convolutional, projection D)."""

from .cdcgan import CDCGANConfig, CDCGANDiscriminator, CDCGANGenerator, ConditionalBatchNorm2d
from .mlp import CGANConfig, CGANDiscriminator, CGANGenerator

__all__ = [
    "CDCGANConfig", "CDCGANDiscriminator", "CDCGANGenerator", "CGANConfig", "CGANDiscriminator", "CGANGenerator",
    "ConditionalBatchNorm2d",
]
