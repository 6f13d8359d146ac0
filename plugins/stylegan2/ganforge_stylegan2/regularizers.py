"""StyleGAN2's path-length regularisation of G (Karras et al. 2020, section 3.2), as a step term.

A fixed-size step in w should move the image by a fixed amount, in every direction: the penalty is
(|J_w^T y| - a)^2, with J_w the Jacobian of the synthesis network at w, y a random image scaled by
1/sqrt(pixels), and a a moving average of the lengths. It runs lazily (every 4th step in the paper)
on half the batch, and needs a generator with StyleGAN's ``styles`` (z -> ws) and ``synthesis``.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from ganforge import GanforgeError
from ganforge.regularizers import PhaseView, Regularizer, RegularizerOptions


class PathLengthOptions(RegularizerOptions):
    weight: float = Field(2.0, ge=0, description="the penalty's weight (StyleGAN2: 2)")
    interval: int = Field(4, ge=1, le=1024, description="run on every k-th step, scaled by k (StyleGAN2: 4)")
    batch_shrink: int = Field(2, ge=1, description="run on the batch divided by this (StyleGAN2: 2)")
    decay: float = Field(0.01, gt=0, le=1, description="how fast the average length a follows the batches'")


def path_lengths(synthesis: torch.nn.Module, ws: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
    """|J_w^T y| per image: the gradient of <G(w), y> with respect to each image's ws, its squared norm
    averaged over the layers' ws, square-rooted; y ~ N(0, I) / sqrt(H W)."""
    images = synthesis(ws, "random")
    y = torch.randn(images.shape, device=images.device, dtype=images.dtype, generator=noise)
    y = y / math.sqrt(images.shape[2] * images.shape[3])
    (grads,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
    return grads.float().square().sum(2).mean(1).sqrt()


class PathLength(Regularizer):
    """(|J_w^T y| - a)^2 averaged over a shrunken batch, a the moving average of the lengths."""

    phases = ("g",)
    options: PathLengthOptions

    def __init__(self, options: PathLengthOptions) -> None:
        super().__init__(options)
        self.register_buffer("mean_length", torch.zeros(()))

    def penalty(self, view: PhaseView) -> torch.Tensor:
        g = view.generator
        if not (hasattr(g, "styles") and hasattr(g, "synthesis")):
            raise GanforgeError("regulariser 'path-length' needs a generator with StyleGAN's styles() and synthesis "
                                "(the stylegan2 variant)")
        n = max(1, len(view.fake) // self.options.batch_shrink)
        z = g.sample_latent(n, device=view.fake.device, generator=view.noise)
        labels = view.fake_labels[:n] if view.fake_labels is not None else None
        lengths = path_lengths(g.synthesis, g.styles(z, labels, track=False), view.noise)
        with torch.no_grad():
            self.mean_length.lerp_(lengths.mean(), self.options.decay)
        return (lengths - self.mean_length).square().mean()
