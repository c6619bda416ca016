"""Packaged data files (the release matrix, defaults); read with importlib.resources."""
