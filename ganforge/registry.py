"""Name -> object tables filled by plugins, with aliases and provenance (which plugin registered it)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import GanforgeError

T = TypeVar("T")

# Names that ganforge's sister distributions provide, so that asking for one that is not installed
# says what to install. A mapping of names only: ganforge never imports a plugin by name.
KNOWN_PROVIDERS: Mapping[str, str] = {
    "dcgan": "ganforge-dcgan",
    "cgan": "ganforge-cgan",
    "cdcgan": "ganforge-cgan",
    "acgan": "ganforge-cgan",
    "sngan": "ganforge-resnet",
    "biggan": "ganforge-resnet",
    "stylegan2": "ganforge-stylegan2",
}


class NameClash(GanforgeError):
    """A plugin registered a name (or alias) that another plugin registered first."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object, the name it goes by, its aliases, and the plugin that registered it."""

    name: str
    value: T
    plugin: str
    aliases: tuple[str, ...] = ()


class Registry(Generic[T]):
    """Registered objects of one kind (variants, losses or data sets), looked up by name or alias."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._lookup: dict[str, str] = {}

    def add(self, name: str, value: T, plugin: str, aliases: tuple[str, ...] = ()) -> None:
        """Register ``value``; a name or alias already taken raises NameClash naming both plugins, and
        nothing of ``value`` is registered."""
        for key in (name, *aliases):
            if key in self._lookup:
                owner = self._entries[self._lookup[key]].plugin
                raise NameClash(
                    f"{self.kind} name {key!r} is registered twice: by plugin {owner!r} and by "
                    f"plugin {plugin!r}; {owner!r} keeps it and {plugin!r}'s {self.kind} {name!r} is skipped "
                    f"(GANFORGE_DISABLE_PLUGINS={plugin} silences this)"
                )
        self._entries[name] = Entry(name, value, plugin, tuple(aliases))
        for key in (name, *aliases):
            self._lookup[key] = name

    def remove(self, name: str) -> None:
        """Forget ``name`` and its aliases."""
        entry = self._entries.pop(self._lookup[name])
        for key in (entry.name, *entry.aliases):
            del self._lookup[key]

    def entry(self, name: str) -> Entry[T]:
        """The entry for a name or alias; an unknown name gets suggestions and the installed names."""
        if not isinstance(name, str):  # a settings file's `variant = 0`, say
            raise GanforgeError(f"{self.kind} {name!r}: give a {self.kind}'s name as text; installed: "
                                f"{', '.join(self.names())}")
        try:
            return self._entries[self._lookup[name]]
        except KeyError:
            raise GanforgeError(self._unknown_message(name)) from None

    def get(self, name: str) -> T:
        """The object registered under a name or alias."""
        return self.entry(name).value

    def names(self) -> list[str]:
        """Canonical names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._lookup

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def _unknown_message(self, name: str) -> str:
        parts = [f"unknown {self.kind} {name!r}"]
        close = difflib.get_close_matches(name, list(self._lookup), n=3, cutoff=0.6)
        if close:
            *others, last = [repr(c) for c in close]
            parts.append(f"did you mean {', '.join(others) + ' or ' if others else ''}{last}?")
        if self.kind == "variant" and name in KNOWN_PROVIDERS:
            provider = KNOWN_PROVIDERS[name]
            parts.append(f"it is provided by {provider}, which is not installed: pip install {provider}")
        installed = f"installed: {', '.join(self.names()) or 'none'}"
        if self.kind == "variant":
            installed += " (see `ganforge variants` and `ganforge plugins`)"
        parts.append(installed)
        # A question ends its clause itself: "did you mean 'dcgan'? installed: ...", not "?; installed".
        return "".join(part + ("" if i == len(parts) - 1 else " " if part.endswith("?") else "; ")
                       for i, part in enumerate(parts))
