"""Adversarial losses on logits, registered by name through the same hook as plugins' losses.

Every loss works on raw discriminator outputs (logits); the log-sigmoid forms use ``softplus``,
which stays finite where ``log(sigmoid(x))`` would underflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .hookspecs import hookimpl



@dataclass(frozen=True)
class AdversarialLoss:
    """A pair of objectives: ``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)``, both minimised."""

    name: str
    description: str
    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]
    aliases: tuple[str, ...] = ()


def bce_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))], the discriminator side of the original GAN game."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))]: the paper's saturating objective; its gradient vanishes while D wins."""
    return -F.softplus(fake).mean()


def nonsaturating_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))]: the same fixed point with strong gradients early on (what the seed's code trains)."""
    return F.softplus(-fake).mean()


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def critic_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]: the generator side of the hinge and Wasserstein losses."""
    return -fake.mean()


def wasserstein_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[D(G(z))] - E[D(x)] (Arjovsky et al. 2017); pair it with a gradient penalty or weight limits."""
    return fake.mean() - real.mean()


def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2] (Mao et al. 2017, a=0, b=1)."""
    return 0.5 * (real - 1.0).square().mean() + 0.5 * fake.square().mean()


def lsgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """1/2 E[(D(G(z)) - 1)^2] (Mao et al. 2017, c=1)."""
    return 0.5 * (fake - 1.0).square().mean()


def gradient_penalty(
    discriminator: Callable[..., torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates of real and fake (Gulrajani et al. 2017)."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=generator, dtype=real.dtype)
    mixed = torch.lerp(real.detach(), fake.detach().to(real.dtype), alpha).requires_grad_(True)
    scores = discriminator(mixed, labels) if labels is not None else discriminator(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).square().mean()


BUILTIN_LOSSES = (
    AdversarialLoss("minimax", "the paper's min-max game; saturating G objective E[log(1 - D(G(z)))]",
                    bce_d_loss, minimax_g_loss, aliases=("saturating",)),
    AdversarialLoss("nonsaturating", "BCE on logits; G maximises log D(G(z)) (the seed code's objective)",
                    bce_d_loss, nonsaturating_g_loss, aliases=("ns", "bce")),
    AdversarialLoss("hinge", "hinge loss for D, -D(G(z)) for G", hinge_d_loss, critic_g_loss),
    AdversarialLoss("wasserstein", "WGAN critic loss; add --set gradient_penalty=10 for WGAN-GP",
                    wasserstein_d_loss, critic_g_loss, aliases=("wgan",)),
    AdversarialLoss("lsgan", "least squares GAN (a=0, b=1, c=1)", lsgan_d_loss, lsgan_g_loss, aliases=("ls",)),
)


@hookimpl
def ganforge_register_losses(register: Callable[..., None]) -> None:
    for loss in BUILTIN_LOSSES:
        register(loss)
