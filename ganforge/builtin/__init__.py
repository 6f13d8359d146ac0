"""Variants that ship with ganforge, each an ordinary plugin registered like any other."""
