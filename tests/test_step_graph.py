"""Which optimiser settings a captured step holds, so that a hook's change between steps is seen.

The capture itself needs CUDA (tests/test_cuda.py trains through a learning-rate change); what
counts as a change is decided here, on the CPU, with real optimisers and a real scheduler.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.accel.step_graph import SettingsWatch


def adam(**settings: object) -> torch.optim.Adam:
    return torch.optim.Adam(nn.Linear(3, 2).parameters(), **settings)


def test_a_changed_setting_is_named_with_its_old_and_new_value() -> None:
    opt_g, opt_d = adam(lr=2e-4, betas=(0.5, 0.999)), adam(lr=2e-4)
    watch = SettingsWatch({"opt_g": opt_g, "opt_d": opt_d})
    assert watch.changes() == ""
    opt_d.param_groups[0]["lr"] /= 2
    assert watch.changes() == "opt_d.lr 0.0002 -> 0.0001"
    opt_g.param_groups[0]["betas"] = (0.0, 0.99)
    assert watch.changes() == "opt_g.betas (0.5, 0.999) -> (0.0, 0.99), opt_d.lr 0.0002 -> 0.0001"
    watch.mark()  # captured again: these are now the values the graph holds
    assert watch.changes() == ""


def test_an_equal_value_put_back_is_no_change() -> None:
    opt = adam(lr=1e-3)
    watch = SettingsWatch({"opt": opt})
    opt.param_groups[0]["lr"] = float("1e-3")  # a new object, the same value: the graph needs nothing new
    assert watch.changes() == ""
    opt.param_groups[0]["lr"] = 1e-3 / 2
    assert watch.changes() == "opt.lr 0.001 -> 0.0005"


def test_a_scheduler_step_is_a_change() -> None:
    opt = adam(lr=1e-3)
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    watch = SettingsWatch({"opt": opt})
    opt.step()
    schedule.step()
    assert watch.changes() == ""  # the rate holds for two steps
    opt.step()
    schedule.step()
    assert watch.changes() == "opt.lr 0.001 -> 0.0005"


def test_a_tensor_setting_counts_by_identity() -> None:
    # A captured kernel reads a tensor learning rate at each replay: filling it in place reaches the
    # graph, putting another tensor in its place does not.
    opt = adam(lr=torch.tensor(1e-3))
    watch = SettingsWatch({"opt": opt})
    opt.param_groups[0]["lr"].fill_(5e-4)
    assert watch.changes() == ""
    opt.param_groups[0]["lr"] = torch.tensor(5e-4)
    assert watch.changes().startswith("opt.lr ('tensor', ")


def test_parameter_groups_are_told_apart() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    opt = torch.optim.Adam([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 1e-4}], lr=1e-3)
    watch = SettingsWatch({"opt_d": opt})
    opt.param_groups[1]["lr"] = 5e-5
    assert watch.changes() == "opt_d[1].lr 0.0001 -> 5e-05"


def test_without_optimisers_nothing_changes() -> None:
    assert SettingsWatch({}).changes() == ""
