"""DCGAN for ganforge: ``ganforge train dcgan`` once this distribution is installed."""

from .models import DCGANConfig, DCGANDiscriminator, DCGANGenerator, Geometry, dcgan_init, geometry

__all__ = ["DCGANConfig", "DCGANDiscriminator", "DCGANGenerator", "Geometry", "dcgan_init", "geometry"]
