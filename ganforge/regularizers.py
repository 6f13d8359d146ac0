"""Step terms on D's or G's objective, registered by name like variants: gradient penalties (WGAN-GP,
R1, R2), LeCam, balanced consistency regularisation, and whatever plugins add.

A regulariser sees one phase of the step (a :class:`PhaseView`: the real batch, the fakes, D's logits,
D itself for input gradients, the step's random generator) and returns an unweighted scalar; the
step adds it times ``weight``. With ``interval`` k > 1 it is lazy (Karras et al. 2020): it runs on
every k-th step only, scaled by k, so that on average it weighs the same at a k-th of the cost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .hookspecs import hookimpl

Phase = Literal["d", "g"]


class TermOptions(BaseModel):
    """Base of a step term's options: every option has a default; unknown keys and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RegularizerOptions(TermOptions):
    """What every regulariser takes: its weight and how often it runs."""

    weight: float = Field(1.0, ge=0, description="what the penalty is multiplied by in the objective")
    interval: int = Field(1, ge=1, le=1024, description="lazy regularisation: run on every k-th step only, scaled by k")


@dataclass
class PhaseView:
    """What a step term sees of one phase of the step.

    ``phase`` is "d" (D's update: ``fake`` is detached) or "g" (G's update: ``fake`` carries G's graph).
    ``d_real`` and ``d_fake`` are D's logits on the (augmented) images; ``d_real`` is None in G's
    phase unless the loss asked for real logits there. ``score(images, labels)`` runs D, after the
    step's augmentation, in a form that can be differentiated with respect to its input twice
    (gradient penalties); ``discriminator`` and ``generator`` are the modules as the step runs them
    (for heads of their own, such as an auxiliary classifier), and ``augment(images)`` applies the
    step's augmentation (the identity without one) for terms that run D's parts themselves. Draw
    random numbers from ``noise`` only: that keeps a resumed run exact. ``full_precision()`` is a
    context in fp32 (under fp16, input gradients taken before loss scaling would underflow).
    """

    phase: Phase
    step: int
    real: torch.Tensor
    real_labels: torch.Tensor | None
    fake: torch.Tensor
    fake_labels: torch.Tensor | None
    d_real: torch.Tensor | None
    d_fake: torch.Tensor
    score: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    discriminator: nn.Module
    generator: nn.Module
    noise: torch.Generator
    full_precision: Callable[[], contextlib.AbstractContextManager[Any]]
    augment: Callable[[torch.Tensor], torch.Tensor]


class Regularizer(nn.Module):
    """A built regulariser; subclasses implement :meth:`penalty` and list the ``phases`` it adds to.

    Its buffers (a running anchor, say) are its state: they go into checkpoints, so a resumed run
    continues exactly. ``penalty`` must not read tensors on the host (the step may be captured as a
    CUDA graph and runs with no host sync).
    """

    phases: tuple[Phase, ...] = ("d",)

    def __init__(self, options: RegularizerOptions) -> None:
        super().__init__()
        self.options = options

    def penalty(self, view: PhaseView) -> torch.Tensor:
        """The unweighted scalar this term adds in ``view.phase``."""
        raise NotImplementedError


@dataclass(frozen=True)
class RegularizerSpec:
    """A regulariser as a plugin registers it: ``build(options)`` makes one from its validated options.

    ``example_models()`` builds a small (G, D) for the contract kit to check a term on that is made for
    one architecture (StyleGAN2's path length needs its mapping network); by default a small MLP pair.
    """

    name: str
    description: str
    build: Callable[[Any], Regularizer]
    options: type[RegularizerOptions] = RegularizerOptions
    aliases: tuple[str, ...] = ()
    example_models: Callable[[], tuple[Any, Any]] | None = None


def gradient_penalty(score: Callable[..., torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     labels: torch.Tensor | None = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates of real and fake (Gulrajani et al. 2017)."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=generator, dtype=real.dtype)
    mixed = torch.lerp(real.detach(), fake.detach().to(real.dtype), alpha).requires_grad_(True)
    scores = score(mixed, labels) if labels is not None else score(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).square().mean()


def squared_input_gradient(score: Callable[..., torch.Tensor], images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """E[||grad_x D(x)||^2] at the images themselves: R1 on real images, R2 on fakes (Mescheder et al. 2018)."""
    x = images.detach().float().requires_grad_(True)
    (grad,) = torch.autograd.grad(score(x, labels).sum(), x, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


class WGANGPOptions(RegularizerOptions):
    weight: float = Field(10.0, ge=0, description="lambda, the penalty's weight (10 in the paper)")


class WGANGP(Regularizer):
    """The WGAN-GP penalty on D (Gulrajani et al. 2017)."""

    def penalty(self, view: PhaseView) -> torch.Tensor:
        with view.full_precision():
            return gradient_penalty(view.score, view.real, view.fake, view.real_labels, generator=view.noise)


class R1Options(RegularizerOptions):
    gamma: float = Field(10.0, ge=0, description="the penalty is gamma / 2 * E||grad D(x)||^2")


class R1(Regularizer):
    """gamma / 2 * E[||grad_x D(x)||^2] on real images (Mescheder et al. 2018; StyleGAN2 runs it lazily)."""

    options: R1Options

    def penalty(self, view: PhaseView) -> torch.Tensor:
        with view.full_precision():
            return 0.5 * self.options.gamma * squared_input_gradient(view.score, view.real, view.real_labels)


class R2(R1):
    """gamma / 2 * E[||grad_x D(G(z))||^2] on generated images (Mescheder et al. 2018)."""

    def penalty(self, view: PhaseView) -> torch.Tensor:
        with view.full_precision():
            return 0.5 * self.options.gamma * squared_input_gradient(view.score, view.fake, view.fake_labels)


class LeCamOptions(RegularizerOptions):
    weight: float = Field(0.3, ge=0, description="lambda, the penalty's weight")
    decay: float = Field(0.99, ge=0, lt=1, description="decay of the moving averages of D's mean logits")


class LeCam(Regularizer):
    """E[relu(D(x) - a_F)^2] + E[relu(a_R - D(G(z)))^2] (Tseng et al. 2021), with a_R and a_F moving
    averages of D's mean logit on real and on fake images, updated on the device at every D update
    (the first update takes the means themselves)."""

    options: LeCamOptions

    def __init__(self, options: LeCamOptions) -> None:
        super().__init__(options)
        self.register_buffer("anchor_real", torch.zeros(()))
        self.register_buffer("anchor_fake", torch.zeros(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def penalty(self, view: PhaseView) -> torch.Tensor:
        real, fake = view.d_real.float(), view.d_fake.float()  # type: ignore[union-attr]
        with torch.no_grad():
            share = torch.where(self.updates == 0, 1.0, 1.0 - self.options.decay)
            self.anchor_real.add_(share * (real.mean() - self.anchor_real))
            self.anchor_fake.add_(share * (fake.mean() - self.anchor_fake))
            self.updates.add_(1)
        return lecam_penalty(real, fake, self.anchor_real, self.anchor_fake)


def lecam_penalty(real: torch.Tensor, fake: torch.Tensor, anchor_real: torch.Tensor, anchor_fake: torch.Tensor) -> torch.Tensor:
    """LeCam's penalty for logits on real and fake images given the two anchors."""
    return torch.relu(real - anchor_fake).square().mean() + torch.relu(anchor_real - fake).square().mean()


class BCROptions(RegularizerOptions):
    weight_real: float = Field(10.0, ge=0, description="lambda_real: consistency on real images")
    weight_fake: float = Field(10.0, ge=0, description="lambda_fake: consistency on generated images")
    translation: float = Field(0.125, ge=0, le=0.5, description="largest shift, as a share of the image's side")


class BCR(Regularizer):
    """Balanced consistency regularisation (Zhao et al. 2021): D should score an image and its transform
    T(x) alike, on real and on generated images; T flips horizontally at random and shifts by up to
    ``translation`` of the side (zero padding)."""

    options: BCROptions

    def penalty(self, view: PhaseView) -> torch.Tensor:
        from .augment import random_flip, random_translation

        def transformed(images: torch.Tensor) -> torch.Tensor:
            return random_translation(random_flip(images, view.noise), self.options.translation, view.noise)

        real = view.score(transformed(view.real), view.real_labels).float()
        fake = view.score(transformed(view.fake), view.fake_labels).float()
        return (self.options.weight_real * (real - view.d_real.float()).square().mean()  # type: ignore[union-attr]
                + self.options.weight_fake * (fake - view.d_fake.float()).square().mean())


BUILTIN_REGULARIZERS = (
    RegularizerSpec("wgan-gp", "WGAN-GP: weight * E(||grad D(mix of real and fake)|| - 1)^2 (Gulrajani et al. 2017)",
                    WGANGP, WGANGPOptions, aliases=("gp",)),
    RegularizerSpec("r1", "R1: gamma/2 * E||grad D(x)||^2 on real images (Mescheder et al. 2018)", R1, R1Options),
    RegularizerSpec("r2", "R2: gamma/2 * E||grad D(G(z))||^2 on generated images (Mescheder et al. 2018)", R2, R1Options),
    RegularizerSpec("lecam", "LeCam: D's logits held near moving anchors of each other (Tseng et al. 2021)", LeCam,
                    LeCamOptions),
    RegularizerSpec("bcr", "balanced consistency: D scores x and a flipped, shifted x alike (Zhao et al. 2021)", BCR,
                    BCROptions),
)


@hookimpl
def ganforge_register_regularizers(register: Callable[..., None]) -> None:
    for spec in BUILTIN_REGULARIZERS:
        register(spec)
