"""bf16 copies of a model's Linear weights, refreshed once or twice per step, for bf16 autocast on the CPU.

Under autocast every use of a Linear layer's weight and bias casts it to bf16, and the backward pass
casts each bf16 gradient back: in the mlp's step that is 40 casts, each an operator call with its
autograd node, for about the same number of bytes as one pass over the weights. Here the bf16
copies are tensors of their own, a second copy of the model that the step runs (autocast leaves bf16
tensors as they are and still sets every other operator's precision). The fp32 weights stay the
model itself, the masters that the optimiser updates, the EMA averages and checkpoints hold: after
each backward pass the copies' gradients are copied into the masters' in one call, and the trainer
refreshes the copies in one call where it next reads them: D's after its update, both before each
step (whatever changed the masters in between, a resume or a hook clipping weights, then reaches
the step).

The values are those autocast's casts would give, so a run trains bit for bit as it does with
autocast alone (tests/test_bf16_weights.py). That holds for models whose every parameter lives in
an ``nn.Linear`` (exactly that class, whose forward is ``F.linear``) and is read only by that forward:
autocast runs linear layers in bf16 but other layers that hold weights (normalisation, embeddings)
differently, so any other model keeps plain autocast (:func:`why_not_copyable`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def why_not_copyable(**models: nn.Module) -> str | None:
    """Why bf16 copies cannot stand in for ``models`` (named, as in "generator") under autocast, in
    words for an error message; None when they can: every parameter belongs to an ``nn.Linear``
    layer, there is at least one, and no model holds a buffer (the step would read and update the
    copy's buffer, not the model's)."""
    owners = {name: [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
              for name, model in models.items()}
    for name, modules in owners.items():
        other = next((m for m in modules if type(m) is not nn.Linear), None)
        if other is not None:
            return f"the {name} has {type(other).__name__} weights"
    for name, model in models.items():
        buffer = next((key for key, _ in model.named_buffers()), None)
        if buffer is not None:
            return f"the {name} holds a buffer ({buffer})"
    if not any(owners.values()):
        return "they have no weights"
    return None


class BF16Weights:
    """``module``: a bf16 copy of ``model`` to run under autocast; ``model``'s fp32 weights stay the masters."""

    def __init__(self, model: nn.Module) -> None:
        self.module = copy.deepcopy(model).to(torch.bfloat16)
        self._copies = list(self.module.parameters())
        self._masters = list(model.parameters())
        # The masters' gradients are kept from step to step and overwritten: one copy per step, no allocation.
        for p in self._masters:
            p.grad = torch.zeros_like(p)
        self._master_grads = [p.grad for p in self._masters]

    def zero_grad(self) -> None:
        """Clear the copies' gradients before a backward pass."""
        for p in self._copies:
            p.grad = None

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Hand the copies' gradients to the masters and step ``optimizer`` (over the masters); the copies
        are stale until :meth:`sync`."""
        grads = [p.grad for p in self._copies]
        if all(g is not None for g in grads) and all(m.grad is b for m, b in zip(self._masters, self._master_grads)):
            torch._foreach_copy_(self._master_grads, grads)
        else:
            # A layer the loss did not reach has no gradient, and the optimiser skips it, as under autocast.
            for master, buffer, grad in zip(self._masters, self._master_grads, grads):
                master.grad = None if grad is None else buffer.copy_(grad)
        optimizer.step()

    @torch.no_grad()
    def sync(self) -> None:
        """Make the copies equal to the masters: after an optimiser step, and before each training step,
        since anything may have changed the masters in between (a resume, a hook clipping weights)."""
        torch._foreach_copy_(self._copies, self._masters)
