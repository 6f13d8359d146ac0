"""ACGAN (Odena et al. 2017): a class-conditional G, and a D with two heads, one that tells real from
fake and one that names the class. The classification loss is a step term the variant carries
(``acgan``): in D's update, cross-entropy of the class head on real images and on the detached fakes;
in G's, on the fakes, so that G draws images D recognises as the class asked for.

D's score ignores the labels it is given (it is not a projection D); the class reaches D's objective
only through the term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ganforge import DataShape, Discriminator
from ganforge.regularizers import PhaseView, Regularizer, RegularizerOptions
from ganforge_dcgan import DCGANConfig, dcgan_init, geometry
from ganforge_dcgan.models import discriminator_features

from .cdcgan import CDCGANConfig
from .mlp import classes_of


class ACGANConfig(CDCGANConfig):
    """Architecture of ACGAN: cdcgan's generator; D is DCGAN's trunk with an adversarial and a class head."""

    spectral_norm: bool = Field(False, description="spectral normalisation on D's layers (then D has no batch norm)")


class ACGANDiscriminator(Discriminator):
    """DCGAN's trunk, then a linear adversarial head and a linear class head on the same features."""

    def __init__(self, config: DCGANConfig, shape: DataShape) -> None:
        super().__init__(shape.image_shape, classes_of(shape, "acgan"))
        geo = geometry(shape, config.depth)
        layers, width = discriminator_features(config, shape, geo)
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        features = width * geo.start * geo.start
        self.adversarial = nn.Linear(features, 1)
        self.classes = nn.Linear(features, self.num_classes)  # type: ignore[arg-type]
        dcgan_init(self)

    def score(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.adversarial(self.trunk(x))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) for images (B, C, H, W)."""
        return self.classes(self.trunk(x))


class AuxiliaryClassifierLoss(Regularizer):
    """ACGAN's classification loss, on D's class head (its ``classify``), in both phases."""

    phases = ("d", "g")

    def penalty(self, view: PhaseView) -> torch.Tensor:
        d = view.discriminator
        fake = F.cross_entropy(d.classify(view.augment(view.fake)).float(), view.fake_labels)
        if view.phase == "g":
            return fake
        return F.cross_entropy(d.classify(view.augment(view.real)).float(), view.real_labels) + fake


class AuxiliaryClassifierOptions(RegularizerOptions):
    weight: float = Field(1.0, ge=0, description="weight of the classification loss")
