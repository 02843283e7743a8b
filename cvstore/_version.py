# This file MUST NOT contain anything but the __version__ assignment:
# pyproject.toml reads it as text at build time.
__version__ = "0.1.0"
