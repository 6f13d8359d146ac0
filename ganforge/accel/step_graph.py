"""A whole training step captured as one CUDA graph and replayed.

Small GANs on a GPU are bound by the host, not the device: the mlp step issues hundreds of operator
calls whose kernels are shorter than the Python and dispatcher work that launches them, so a larger
batch costs almost nothing more (docs/results/gpu.md). Replaying a captured step launches all of
them at once. Unlike
``torch.compile(mode="reduce-overhead")``, which graphs each compiled module, this covers the whole
step: both forwards, all backwards, both fused Adam updates and the loss bookkeeping.

The step must be capturable: no host syncs, no allocation outside the graph's pool that later steps
rely on, every input at a fixed address (the trainer gathers batches by a device-side offset), and
randomness only from generators registered here. The optimisers' plain settings (a float learning
rate, the betas) are recorded into the graph as constants, so when one changes between steps (a
hook's learning-rate schedule) the step is captured anew with the new value: a changed setting is
never silently ignored.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import torch

from ..errors import GanforgeError


class SettingsWatch:
    """Which of ``optimizers``' settings (by name: ``{"opt_g": ...}``) changed since :meth:`mark`.

    A captured step holds a plain value (a float learning rate, the betas) as it stood at capture.
    A tensor (a device-side learning rate) is read at each replay, so it counts by identity:
    changing it in place reaches the graph, replacing it does not.
    """

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        self.optimizers = dict(optimizers)
        self.mark()

    def mark(self) -> None:
        """Take the settings as they stand now as the ones the graph holds."""
        self._held = self._values()
        self._objects = self._setting_objects()

    def changes(self) -> str:
        """The settings whose values changed since :meth:`mark`, as "opt_g.lr 0.0002 -> 0.0001" ("" when
        none did). Each call checks that the same objects are in place (under a microsecond); values
        are compared only after something new was put there (a schedule may put back an equal value)."""
        objects = self._setting_objects()
        if len(objects) == len(self._objects) and all(map(operator.is_, objects, self._objects)):
            return ""
        self._objects = objects
        return ", ".join(f"{key} {self._held.get(key)!r} -> {value!r}"
                         for key, value in self._values().items() if self._held.get(key) != value)

    def _setting_objects(self) -> list[Any]:
        return [value for optimizer in self.optimizers.values() for group in optimizer.param_groups for value in group.values()]

    def _values(self) -> dict[str, Any]:
        return {f"{name}.{key}" if len(optimizer.param_groups) == 1 else f"{name}[{i}].{key}": _held(value)
                for name, optimizer in self.optimizers.items() for i, group in enumerate(optimizer.param_groups)
                for key, value in group.items() if key != "params"}


def _held(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value))
    if isinstance(value, tuple):
        return tuple(_held(v) for v in value)
    return value


class CapturedStep:
    """Call it once per training step with the form of the step it is: the first ``warmup`` calls of a
    form run ``step`` eagerly, later ones replay that form's graph.

    A form (a hashable ``key``) is one shape of the step's work: a step that adds a lazy regulariser
    issues other kernels than one that does not, so each form is captured once, and the step
    function reads which form it is from the state that chose the key. The graphs share one memory
    pool: they replay one at a time and no tensor made inside one is read after its step.

    ``optimizers``: those the step updates, by name. When a setting of theirs that the graphs hold
    changed since the capture, the next call captures the step again and tells ``on_recapture``
    what changed (as "opt_g.lr 0.0002 -> 0.0001").
    """

    def __init__(self, step: Callable[[], None], generators: Sequence[torch.Generator], warmup: int = 3, *,
                 optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                 on_recapture: Callable[[str], None] | None = None) -> None:
        self.step = step
        self.generators = list(generators)
        self.warmup = warmup
        self.settings = SettingsWatch(optimizers or {})
        self.on_recapture = on_recapture
        self.calls: dict[Hashable, int] = {}
        self.captures = 0
        self.recaptures = 0
        self.graphs: dict[Hashable, torch.cuda.CUDAGraph] = {}
        self._pool: Any = None

    def __call__(self, key: Hashable = None) -> None:
        self.calls[key] = self.calls.get(key, 0) + 1
        if self.graphs and (changes := self.settings.changes()):
            torch.cuda.synchronize()  # the last replay finishes before its graph and memory pool go
            self.graphs.clear()
            self._pool = None
            self.recaptures += 1
            if self.on_recapture is not None:
                self.on_recapture(changes)
        graph = self.graphs.get(key)
        if graph is not None:
            graph.replay()
        elif self.calls[key] <= self.warmup:
            # Lazily created state (Adam's moments, cuBLAS handles and workspaces) comes into being
            # here, on a side stream, as CUDA graph capture requires.
            current = torch.cuda.current_stream()
            side = torch.cuda.Stream()
            side.wait_stream(current)
            with torch.cuda.stream(side):
                self.step()
            current.wait_stream(side)
        else:
            self.graphs[key] = graph = self._capture()
            graph.replay()  # capture records the step; this runs it

    def _capture(self) -> torch.cuda.CUDAGraph:
        if not self.graphs:
            self.settings.mark()
            self._pool = torch.cuda.graph_pool_handle()
        self.captures += 1
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            graph.register_generator_state(generator)
        torch.cuda.synchronize()
        try:
            with torch.cuda.graph(graph, pool=self._pool):
                self.step()
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GanforgeError(
                f"the training step could not be captured as a CUDA graph ({first}); a plugin's model, loss or "
                "step term probably reads a value on the host; train with --set capture_step=false"
            ) from exc
        return graph
