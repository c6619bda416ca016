"""Packaged data files (the release matrix, defaults), each naming its sources."""

from pathlib import Path


def read(name: str) -> str:
    """The text of a data file of this package (a plain folder: no importlib.resources, 3 ms)."""
    return (Path(__file__).parent / name).read_text(encoding="utf-8")
