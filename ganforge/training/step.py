"""THE training step, the same for every variant: the GAN maths and nothing else.

Per step: ``n_critic`` times, draw a real batch and fresh noise, generate, let D score the real and
the detached fake images (through the augmentation, if any), and update D on its loss plus the
regularisers of D's phase; then score the last fake with D's weights frozen and update G on its
loss plus the terms of G's phase. How a forward or an update runs (precision, copies, kernels, DDP,
CUDA graphs) is the accelerator's business; what the step adds up for the log stays on the device.
"""

from __future__ import annotations

from functools import partial

import torch

from ..accel.accelerator import Accelerator
from ..losses import AdversarialLoss
from ..nn import Generator
from ..regularizers import Phase, PhaseView
from .batches import ResidentBatches
from .terms import StepTerms

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
    """One generator update and ``n_critic`` discriminator updates, with no host sync.

    Before each call the loop sets ``step``, the number of steps completed, which decides the lazy
    regularisers that run (:meth:`form`).
    """

    def __init__(self, accel: Accelerator, loss: AdversarialLoss, batches: ResidentBatches, inputs: FakeInputs,
                 terms: StepTerms, *, n_critic: int, batch_size: int, joint_d_forward: bool) -> None:
        self.accel = accel
        self.loss = loss
        self.batches = batches
        self.inputs = inputs
        self.terms = terms
        self.n_critic = n_critic
        self.batch_size = batch_size
        # Without batch statistics in D, one forward over real and fake together is the same function
        # as two forwards, and bigger matrix products run faster.
        self.joint_d_forward = joint_d_forward
        self.figures = (*FIGURES, *(r.figure for r in terms.regularizers))
        self.sums = torch.zeros(len(self.figures), device=accel.device)
        self._zero = torch.zeros((), device=accel.device)
        self.step = 0

    def form(self) -> tuple[bool, ...]:
        """Which regularisers run in this step: the form of the step, one CUDA graph per form."""
        return self.terms.form(self.step)

    def __call__(self) -> None:
        a = self.accel
        runs = self.form()
        a.begin_step()
        for i in range(self.n_critic):
            real, real_labels = self.batches.real(i)
            z, fake_labels = self.inputs.draw(self.batch_size)
            with a.autocast(), torch.set_grad_enabled(i == self.n_critic - 1):
                fake = a.g(z, fake_labels)
            with a.autocast():
                d_real, d_fake = self.score(a.d, real, real_labels, fake.detach(), fake_labels)
                if self.terms.augmentation is not None:
                    self.terms.augmentation.observe(d_real)
                d_loss = self.loss.d_loss(d_real, d_fake)
                view = self._view("d", real, real_labels, fake.detach(), fake_labels, d_real, d_fake)
                d_loss, d_terms = self._add_terms(d_loss, "d", view, runs)
            a.update("d", d_loss)
        with a.frozen_d(), a.autocast():
            if self.loss.g_needs_real:
                g_real, g_fake = self.score(a.d_frozen, real.detach(), real_labels, fake, fake_labels)
                g_real = g_real.detach()  # type: ignore[union-attr]
            else:
                g_real, g_fake = None, self.score(a.d_frozen, None, None, fake, fake_labels)[1]
            g_loss = self.loss.g_loss(g_real, g_fake)
            view = self._view("g", real, real_labels, fake, fake_labels, g_real, g_fake)
            g_loss, g_terms = self._add_terms(g_loss, "g", view, runs)
        a.update("g", g_loss)
        terms = [d + g for d, g in zip(d_terms, g_terms)]
        self.sums += torch.stack([d_loss.detach(), g_loss.detach(), d_real.detach().mean(), d_fake.detach().mean(), *terms])

    def score(self, d: torch.nn.Module, real: torch.Tensor | None, real_labels: torch.Tensor | None, fake: torch.Tensor,
              fake_labels: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """D's logits on real (if given) and on fake images, as fp32, after the augmentation, in one
        forward where D allows it."""
        if real is None:
            return None, d(self._augmented(fake), fake_labels).float()
        if not self.joint_d_forward:
            return d(self._augmented(real), real_labels).float(), d(self._augmented(fake), fake_labels).float()
        labels = torch.cat([real_labels, fake_labels]) if real_labels is not None else None
        scores = d(self._augmented(torch.cat([real, fake.to(real.dtype)])), labels).float()
        return scores[: len(real)], scores[len(real):]

    def _augmented(self, images: torch.Tensor) -> torch.Tensor:
        augmentation = self.terms.augmentation
        return images if augmentation is None else augmentation(images, self.inputs.noise)

    def _score_for_input_grads(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.accel.d_input_grads(self._augmented(images), labels)

    def _view(self, phase: Phase, real: torch.Tensor, real_labels: torch.Tensor | None, fake: torch.Tensor,
              fake_labels: torch.Tensor | None, d_real: torch.Tensor | None, d_fake: torch.Tensor) -> PhaseView:
        a = self.accel
        return PhaseView(phase, self.step, real, real_labels, fake, fake_labels, d_real, d_fake,
                         self._score_for_input_grads if phase == "d" else partial(self._frozen_score, a),
                         a.d_module, a.g_module, self.inputs.noise, a.input_grad_precision, self._augmented)

    def _frozen_score(self, a: Accelerator, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return a.d_frozen(self._augmented(images), labels)

    def _add_terms(self, loss: torch.Tensor, phase: Phase, view: PhaseView,
                   runs: tuple[bool, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``loss`` plus the weighted penalties of the regularisers that run in this phase and step, and
        each regulariser's unweighted penalty (zero where it did not run) for the log."""
        values = []
        for chosen, running in zip(self.terms.regularizers, runs):
            if running and phase in chosen.module.phases:
                penalty = chosen.module.penalty(view)
                loss = loss + chosen.scale * penalty
                values.append(penalty.detach().float())
            else:
                values.append(self._zero)
        return loss, values
