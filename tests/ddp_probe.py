"""Run under torchrun by test_distributed.py: trains through ganforge's loop, then every rank saves
the state it ended with, so the test can compare ranks. Usage: ddp_probe.py OUT VARIANT STEPS [resume];
GANFORGE_PROBE_SETTINGS may hold more TrainConfig settings as JSON."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from ganforge import TrainConfig, hookimpl, load_catalog, resume, train
from ganforge.accel.distributed import close_distributed
from ganforge.plugins import make_plugin_manager


class SaveEveryRank:
    def __init__(self, out: Path) -> None:
        self.out = out

    @hookimpl
    def ganforge_train_end(self, context, status):
        state = {"generator": context.generator.state_dict(), "discriminator": context.discriminator.state_dict(),
                 "opt_g": context.opt_g.state_dict(), "step": context.step,
                 "augmentation": None if context.augmentation is None else context.augmentation.state_dict()}
        torch.save(state, self.out.parent / f"{self.out.name}-rank{context.rank}.pt")


def main() -> None:
    out, variant, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    pm = make_plugin_manager()
    pm.register(SaveEveryRank(out), name="save-every-rank")
    catalog = load_catalog(pm)
    if len(sys.argv) > 4:
        resume(out, steps=steps, catalog=catalog)
    else:
        extra = json.loads(os.environ.get("GANFORGE_PROBE_SETTINGS", "{}"))
        model = extra.pop("model", {"base_width": 4} if variant == "dcgan" else {"g_hidden": [32], "d_hidden": [32]})
        train(TrainConfig(variant=variant, model=model, device="cpu", steps=steps, batch_size=16, log_every=2,
                          checkpoint_every=3, out=out, ema=0.9, **extra), catalog)
    close_distributed()


if __name__ == "__main__":
    main()
