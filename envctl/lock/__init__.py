"""The lock concern: turning a spec into a lockfile and reading one back.

``lockfile`` (the model, solving every platform, rendering and reading conda-lock's format) over
``state`` (the DO-NOT-EDIT header and whether a lock is current), ``grammar`` (every field read
from a lock checked as untrusted input), ``conda`` (py-rattler's solve), ``pip`` and ``uv`` (the
pip part: uv where it can, pip's resolver otherwise) on ``pins`` (what a pip pin is),
``pylock`` and ``wheels`` (reading uv's outputs), and ``variant`` (the locked torch is the
spec's CPU or CUDA build).
"""

from envctl.lock.lockfile import (LockedEnv, LockResult, cuda_libraries, layer_of, load_lock, lock_image, render,
                                  require_current_lock, target, write_lock)

__all__ = ["LockResult", "LockedEnv", "cuda_libraries", "layer_of", "load_lock", "lock_image", "render",
           "require_current_lock", "target", "write_lock"]
