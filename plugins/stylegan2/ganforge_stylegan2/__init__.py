"""StyleGAN2-ADA for ganforge: ``ganforge train stylegan2`` once this distribution is installed."""

from .networks import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2Generator
from .regularizers import PathLength

__all__ = ["PathLength", "StyleGAN2Config", "StyleGAN2Discriminator", "StyleGAN2Generator"]
