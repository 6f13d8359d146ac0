"""ResNet GANs for ganforge: ``ganforge train sngan`` and ``ganforge train biggan`` once this
distribution is installed."""

from .biggan import BigGANConfig, BigGANDiscriminator, BigGANGenerator, Orthogonal
from .sngan import SNGANConfig, SNGANDiscriminator, SNGANGenerator

__all__ = ["BigGANConfig", "BigGANDiscriminator", "BigGANGenerator", "Orthogonal", "SNGANConfig",
           "SNGANDiscriminator", "SNGANGenerator"]
