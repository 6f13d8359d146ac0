"""THE training step, the same for every variant: the GAN maths and nothing else.

Per step: ``n_critic`` times, draw a real batch and fresh noise, generate, score real and the
detached fake, update D on its loss; then score the last fake with D's weights frozen and update G.
How a forward or an update runs (precision, copies, kernels, DDP, CUDA graphs) is the
accelerator's business; what the step adds up for the log stays on the device.
"""

from __future__ import annotations

import torch

from ..accel.accelerator import Accelerator
from ..losses import AdversarialLoss, gradient_penalty
from ..nn import Generator
from .batches import ResidentBatches

FIGURES = ("d_loss", "g_loss", "d_real", "d_fake")
"""What every step adds to the log: both losses and D's mean logit on real and on fake images."""


class FakeInputs:
    """Latent codes from G's prior and, for conditional variants, the classes to draw: uniform, or at
    the data's class frequencies. All from ``noise``, so a resumed run draws what it would have."""

    def __init__(self, generator: Generator, noise: torch.Generator, device: torch.device,
                 class_frequencies: torch.Tensor | None) -> None:
        self.generator = generator
        self.noise = noise
        self.device = device
        self.class_frequencies = class_frequencies

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = self.generator.sample_latent(n, device=self.device, generator=self.noise)
        if self.class_frequencies is not None:
            return z, torch.multinomial(self.class_frequencies, n, replacement=True, generator=self.noise)
        if self.generator.num_classes:
            return z, torch.randint(0, self.generator.num_classes, (n,), device=self.device, generator=self.noise)
        return z, None


class GanStep:
    """One generator update and ``n_critic`` discriminator updates, with no host sync."""

    def __init__(self, accel: Accelerator, loss: AdversarialLoss, batches: ResidentBatches, inputs: FakeInputs, *,
                 n_critic: int, batch_size: int, joint_d_forward: bool, gradient_penalty: float = 0.0) -> None:
        self.accel = accel
        self.loss = loss
        self.batches = batches
        self.inputs = inputs
        self.n_critic = n_critic
        self.batch_size = batch_size
        # Without batch statistics in D, one forward over real and fake together is the same function
        # as two forwards, and bigger matrix products run faster.
        self.joint_d_forward = joint_d_forward
        self.gradient_penalty = gradient_penalty
        self.sums = torch.zeros(len(FIGURES), device=accel.device)

    def __call__(self) -> None:
        a = self.accel
        a.begin_step()
        for i in range(self.n_critic):
            real, real_labels = self.batches.real(i)
            z, fake_labels = self.inputs.draw(self.batch_size)
            with a.autocast(), torch.set_grad_enabled(i == self.n_critic - 1):
                fake = a.g(z, fake_labels)
            with a.autocast():
                d_real, d_fake = self.score(real, real_labels, fake.detach(), fake_labels)
                d_loss = self.loss.d_loss(d_real, d_fake)
                if self.gradient_penalty:
                    with a.input_grad_precision():
                        penalty = gradient_penalty(a.d_input_grads, real, fake, real_labels, generator=self.inputs.noise)
                    d_loss = d_loss + self.gradient_penalty * penalty
            a.update("d", d_loss)
        with a.frozen_d(), a.autocast():
            g_loss = self.loss.g_loss(a.d_frozen(fake, fake_labels).float())
        a.update("g", g_loss)
        self.sums += torch.stack([d_loss.detach(), g_loss.detach(), d_real.detach().mean(), d_fake.detach().mean()])

    def score(self, real: torch.Tensor, real_labels: torch.Tensor | None, fake: torch.Tensor,
              fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits on real and on fake images, as fp32, in one forward where D allows it."""
        d = self.accel.d
        if not self.joint_d_forward:
            return d(real, real_labels).float(), d(fake, fake_labels).float()
        labels = torch.cat([real_labels, fake_labels]) if real_labels is not None else None
        scores = d(torch.cat([real, fake.to(real.dtype)]), labels).float()
        return scores[: len(real)], scores[len(real):]
