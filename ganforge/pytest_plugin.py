"""The contract kit as a pytest plugin (entry point ``pytest11``): name a distribution in the test
configuration and every variant, regulariser, augmentation and data set it registers is checked,
one test item each, with no test code to write::

    [tool.pytest.ini_options]
    ganforge_contract = ["ganforge-tiny"]

or ``pytest --ganforge-contract ganforge-tiny``. The items are named ``ganforge-contract::KIND:NAME``
(``-k tiny`` picks them as any test) and fail with the :class:`~ganforge.testing.ContractViolation`
(or the loop's own one-line error) that names what broke. Each check runs with its defaults; call the functions of :mod:`ganforge.testing`
from a test of your own to pass other shapes, configs or options.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

KINDS = ("variants", "regularizers", "augmentations", "datasets")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _checks() -> dict[str, Callable[[Any], None]]:
    from . import testing

    return {"variants": testing.check_variant, "regularizers": testing.check_regularizer,
            "augmentations": testing.check_augmentation, "datasets": testing.check_dataset}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("ganforge_contract", type="linelist", default=[],
                  help="distributions whose registrations ganforge's contract kit checks, one test item each")
    parser.getgroup("ganforge").addoption(
        "--ganforge-contract", action="append", default=[], metavar="DIST",
        help="check every variant, regulariser, augmentation and data set that distribution DIST registers")


class ContractItem(pytest.Item):
    """One registration checked against the contract the loop relies on."""

    def __init__(self, *, check: Callable[[Any], None], spec: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check, self.spec = check, spec

    def runtest(self) -> None:
        self.check(self.spec)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from .errors import GanforgeError
        from .testing import ContractViolation

        if isinstance(excinfo.value, (ContractViolation, GanforgeError)):  # the loop's own checks raise the latter
            return f"{self.name}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"ganforge contract: {self.name}"


class ContractCollector(pytest.Collector):
    """The parent of the contract items, so that they read ``ganforge-contract::KIND:NAME``."""

    def collect(self) -> list[pytest.Item]:
        return []


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = {_canonical(name) for name in [*config.getoption("ganforge_contract"), *config.getini("ganforge_contract")]}
    if not wanted:
        return
    from .catalog import load_catalog

    catalog = load_catalog()
    checks = _checks()
    parent = ContractCollector.from_parent(session, name="ganforge-contract", nodeid="ganforge-contract")
    found = set()
    for kind in KINDS:
        for entry in getattr(catalog, kind):
            distribution = catalog.distribution(entry.plugin)
            if distribution is not None and _canonical(distribution) in wanted:
                found.add(_canonical(distribution))
                items.append(ContractItem.from_parent(parent, name=f"{kind[:-1]}:{entry.name}",
                                                      check=checks[kind], spec=entry.value))
    missing = sorted(wanted - found)
    if missing:
        raise pytest.UsageError(
            f"ganforge_contract names {', '.join(missing)}, which registers nothing ganforge loaded; install it "
            "(pip install -e .) or check the name against `ganforge plugins`")
