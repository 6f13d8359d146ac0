"""Adversarial losses on logits, registered by name through the same hook as plugins' losses.

Every loss works on raw discriminator outputs (logits) and sees both sides: D's objective and G's
each get the logits on real and on fake images, so relativistic losses are written as honestly as
the standard ones. The log-sigmoid forms use ``softplus``, which stays finite where
``log(sigmoid(x))`` would underflow.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .hookspecs import hookimpl
from .plugins import PluginWarning


@dataclass(frozen=True)
class AdversarialLoss:
    """A pair of objectives, both minimised: ``d_loss(real_logits, fake_logits)`` and
    ``g_loss(real_logits, fake_logits)``.

    G's phase scores only fake images unless ``g_needs_real`` is set: then it also scores the real
    batch (with D's weights frozen) and passes those logits; otherwise ``real_logits`` is None there.
    A ``g_loss`` written to the old one-argument form ``g_loss(fake_logits)`` keeps working, with a warning.
    """

    name: str
    description: str
    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor | None, torch.Tensor], torch.Tensor]
    aliases: tuple[str, ...] = ()
    g_needs_real: bool = False

    def __post_init__(self) -> None:
        if _positional_parameters(self.g_loss) == 1:
            warnings.warn(f"loss {self.name!r}: g_loss(fake_logits) is the form of ganforge 0.1; write "
                          "g_loss(real_logits, fake_logits) (real_logits is None unless g_needs_real=True)",
                          PluginWarning, stacklevel=3)
            legacy = self.g_loss
            object.__setattr__(self, "g_loss", lambda real, fake: legacy(fake))


def _positional_parameters(function: Callable[..., Any]) -> int | None:
    """How many positional parameters ``function`` takes; None where it takes any number or cannot be inspected."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in parameters)


def bce_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))], the discriminator side of the original GAN game."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_g_loss(real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))]: the paper's saturating objective; its gradient vanishes while D wins."""
    return -F.softplus(fake).mean()


def nonsaturating_g_loss(real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))]: the same fixed point with strong gradients early on (what most tutorials' code trains)."""
    return F.softplus(-fake).mean()


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def critic_g_loss(real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]: the generator side of the hinge and Wasserstein losses."""
    return -fake.mean()


def wasserstein_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[D(G(z))] - E[D(x)] (Arjovsky et al. 2017); pair it with a gradient penalty or weight limits."""
    return fake.mean() - real.mean()


def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2] (Mao et al. 2017, a=0, b=1)."""
    return 0.5 * (real - 1.0).square().mean() + 0.5 * fake.square().mean()


def lsgan_g_loss(real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
    """1/2 E[(D(G(z)) - 1)^2] (Mao et al. 2017, c=1)."""
    return 0.5 * (fake - 1.0).square().mean()


def relativistic_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-E[log sigmoid(C(x) - E C(G(z)))] - E[log(1 - sigmoid(C(G(z)) - E C(x)))]: RaSGAN's D
    (Jolicoeur-Martineau 2019), with C the logits: how much more real than the average fake each real
    image looks, and the reverse."""
    return F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean()


def relativistic_g_loss(real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
    """RaSGAN's G: D's objective with real and fake swapped, so G also pulls real images' relative
    realness down (its gradient reaches G through the fake logits only)."""
    if real is None:
        raise ValueError("the relativistic loss scores real images in G's phase: register it with g_needs_real=True")
    return F.softplus(real - fake.mean()).mean() + F.softplus(-(fake - real.mean())).mean()


BUILTIN_LOSSES = (
    AdversarialLoss("minimax", "the paper's min-max game; saturating G objective E[log(1 - D(G(z)))]",
                    bce_d_loss, minimax_g_loss, aliases=("saturating",)),
    AdversarialLoss("nonsaturating", "BCE on logits; G maximises log D(G(z)) (the usual choice)",
                    bce_d_loss, nonsaturating_g_loss, aliases=("ns", "bce")),
    AdversarialLoss("hinge", "hinge loss for D, -D(G(z)) for G", hinge_d_loss, critic_g_loss),
    AdversarialLoss("wasserstein", "WGAN critic loss; add --reg wgan-gp for WGAN-GP",
                    wasserstein_d_loss, critic_g_loss, aliases=("wgan",)),
    AdversarialLoss("lsgan", "least squares GAN (a=0, b=1, c=1)", lsgan_d_loss, lsgan_g_loss, aliases=("ls",)),
    AdversarialLoss("relativistic", "relativistic average GAN (RaSGAN): each side judged against the other's mean",
                    relativistic_d_loss, relativistic_g_loss, aliases=("ragan", "rasgan"), g_needs_real=True),
)


@hookimpl
def ganforge_register_losses(register: Callable[..., None]) -> None:
    for loss in BUILTIN_LOSSES:
        register(loss)
