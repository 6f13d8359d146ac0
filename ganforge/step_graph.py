"""A whole training step captured as one CUDA graph and replayed.

Small GANs on a GPU are bound by the host, not the device: the mlp step issues ~900 operator calls
whose kernels take microseconds each, so batch 64 and batch 1024 run at the same ~260 steps/s on an
H200 (docs/performance.md). Replaying a captured step launches all of them at once. Unlike
``torch.compile(mode="reduce-overhead")``, which graphs each compiled module, this covers the whole
step: both forwards, all backwards, both fused Adam updates and the loss bookkeeping.

The step must be capturable: no host syncs, no allocation outside the graph's pool that later steps
rely on, every input at a fixed address (the trainer gathers batches by a device-side offset), and
randomness only from generators registered here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .errors import GanforgeError


class CapturedStep:
    """Call it once per training step: the first ``warmup`` calls run ``step`` eagerly, then it replays a graph."""

    def __init__(self, step: Callable[[], None], generators: Sequence[torch.Generator], warmup: int = 3) -> None:
        self.step = step
        self.generators = list(generators)
        self.warmup = warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self) -> None:
        self.calls += 1
        if self.graph is not None:
            self.graph.replay()
        elif self.calls <= self.warmup:
            # Lazily created state (Adam's moments, cuBLAS handles and workspaces) comes into being
            # here, on a side stream, as CUDA graph capture requires.
            current = torch.cuda.current_stream()
            side = torch.cuda.Stream()
            side.wait_stream(current)
            with torch.cuda.stream(side):
                self.step()
            current.wait_stream(side)
        else:
            self.graph = self._capture()
            self.graph.replay()  # capture records the step; this runs it

    def _capture(self) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            graph.register_generator_state(generator)
        torch.cuda.synchronize()
        try:
            with torch.cuda.graph(graph):
                self.step()
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GanforgeError(
                f"the training step could not be captured as a CUDA graph ({first}); a plugin's model or loss "
                "probably reads a value on the host; train with --set capture_step=false"
            ) from exc
        return graph
