"""ganforge's version, imported by whoever needs it (nothing inside ganforge imports the package's __init__)."""

__version__ = "0.3.0"
