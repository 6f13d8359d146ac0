"""The step terms a run trains with: picked by name in the settings, by the variant's recipe or by the
variant itself, validated against each term's own options, built, and kept in the checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from ..augment import Augmentation
from ..catalog import Catalog
from ..config import TermChoice, TrainConfig, validate_settings, validation_message
from ..errors import GanforgeError
from ..regularizers import Regularizer
from ..variant import VariantSpec


@dataclass
class ChosenRegularizer:
    """A regulariser of this run: its name, validated options and built module."""

    name: str
    options: Any
    module: Regularizer

    @property
    def scale(self) -> float:
        """What its penalty is multiplied by on the steps it runs: weight, times the interval when lazy."""
        return self.options.weight * self.options.interval

    def runs_at(self, step: int) -> bool:
        """Whether it runs in the step that follows ``step`` completed steps."""
        return step % self.options.interval == 0

    @property
    def figure(self) -> str:
        return f"reg_{self.name}"


@dataclass
class StepTerms:
    """The run's regularisers and its augmentation (or None)."""

    regularizers: list[ChosenRegularizer]
    augmentation: Augmentation | None
    augmentation_name: str | None = None
    augmentation_options: BaseModel | None = None

    def form(self, step: int) -> tuple[bool, ...]:
        """Which regularisers run in the step after ``step``: one form of the step for each pattern."""
        return tuple(r.runs_at(step) for r in self.regularizers)

    def to(self, device: torch.device) -> None:
        for r in self.regularizers:
            r.module.to(device)
        if self.augmentation is not None:
            self.augmentation.to(device)

    def describe(self) -> dict[str, Any]:
        """The terms with every option resolved, as config.json records them."""
        return {
            "regularizers": [{"name": r.name, **r.options.model_dump(mode="json")} for r in self.regularizers],
            "augment": (None if self.augmentation_options is None
                        else {"name": self.augmentation_name, **self.augmentation_options.model_dump(mode="json")}),
        }

    def state_dict(self) -> dict[str, Any]:
        state = {f"reg:{r.name}": r.module.state_dict() for r in self.regularizers}
        if self.augmentation is not None:
            state["augment"] = self.augmentation.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore each term's state; a term the checkpoint has none for (added in a later version) starts afresh."""
        for r in self.regularizers:
            if f"reg:{r.name}" in state:
                r.module.load_state_dict(state[f"reg:{r.name}"])
        if self.augmentation is not None and "augment" in state:
            self.augmentation.load_state_dict(state["augment"])


def _options(spec: Any, choice: TermChoice, flag: str) -> BaseModel:
    try:
        return validate_settings(spec.options, choice.options)
    except ValidationError as exc:
        raise GanforgeError(f"{flag} {choice.name}: {validation_message(exc).removeprefix('bad config: ')}") from None


def choose_terms(config: TrainConfig, spec: VariantSpec, catalog: Catalog) -> StepTerms:
    """Build the terms ``config`` and the variant ask for; a bad name or option is one line naming the term."""
    choices = [TermChoice.model_validate(t) for t in spec.terms] + list(config.regularizers)
    if config.gradient_penalty:
        if any(catalog.regularizers.entry(c.name).name == "wgan-gp" for c in choices):
            raise GanforgeError("the gradient penalty is chosen twice: give --set gradient_penalty=W or --reg wgan-gp:weight=W")
        choices.append(TermChoice(name="wgan-gp", weight=config.gradient_penalty))  # type: ignore[call-arg]
    regularizers: list[ChosenRegularizer] = []
    for choice in choices:
        entry = catalog.regularizers.entry(choice.name)
        if any(r.name == entry.name for r in regularizers):
            raise GanforgeError(f"regulariser {entry.name!r} is chosen twice (by the variant {spec.name!r} or in the "
                                "settings); give each once, with all its options")
        options = _options(entry.value, choice, "--reg")
        if options.weight == 0:  # type: ignore[attr-defined]
            continue
        module = entry.value.build(options)
        if not isinstance(module, Regularizer):
            raise GanforgeError(f"regulariser {entry.name!r} ({catalog.origin('regularizers', entry.name)}) built a "
                                f"{type(module).__name__}; it must build a ganforge.regularizers.Regularizer")
        regularizers.append(ChosenRegularizer(entry.name, options, module))
    if config.augment is None:
        return StepTerms(regularizers, None)
    entry = catalog.augmentations.entry(config.augment.name)
    options = _options(entry.value, config.augment, "--augment")
    augmentation = entry.value.build(options)
    if not isinstance(augmentation, Augmentation):
        raise GanforgeError(f"augmentation {entry.name!r} ({catalog.origin('augmentations', entry.name)}) built a "
                            f"{type(augmentation).__name__}; it must build a ganforge.augment.Augmentation")
    return StepTerms(regularizers, augmentation, entry.name, options)
