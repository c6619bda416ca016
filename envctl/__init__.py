"""envctl: reproducible PyTorch+CUDA environments (catalog, lock, build, verify)."""

__version__ = "0.1.0"
