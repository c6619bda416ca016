"""``envctl build``: plan purely, then build with the engine.

``plan`` renders the Dockerfile, labels and layers from the spec and the lock with no
engine involved; ``layers`` decides which packages go in which image layer and folds
the layer manifests into the environment's content hash; ``context`` fills a build
context from the verified package cache; ``run`` drives the engine.  The scripts the
build itself runs live in ``envctl/builder/`` (standard library only).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

_FROM = {  # name -> the submodule that defines it; imported on first use (the lock's summary needs
    # only ``layers``, not the engine, tarfile and the rest: 7 ms off every `envctl lock`)
    "RATTLER_PLATFORM": "context", "assemble_context": "context", "rattler_tool": "context",
    "Layer": "layers", "plan_layers": "layers", "tree_hash": "layers",
    "LABEL_LOCK_HASH": "plan", "LABEL_SPEC": "plan", "LABEL_SPEC_HASH": "plan", "LABEL_TREE": "plan",
    "BuildPlan": "plan", "default_tag": "plan", "dockerquote": "plan", "plan_build": "plan",
    "render_dockerfile": "plan", "requirements_txt": "plan",
    "BuildResult": "run", "build_image": "run", "drop_context": "run", "find_built": "run", "image_layers": "run",
    "require_built": "run", "stamp_tree": "run",
}
__all__ = sorted(_FROM)


def __getattr__(name: str):
    if name not in _FROM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"envctl.build.{_FROM[name]}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # the names, for readers and type checkers
    from envctl.build.context import RATTLER_PLATFORM, assemble_context, rattler_tool  # noqa: F401
    from envctl.build.layers import Layer, plan_layers, tree_hash  # noqa: F401
    from envctl.build.plan import (  # noqa: F401
        LABEL_LOCK_HASH, LABEL_SPEC, LABEL_SPEC_HASH, LABEL_TREE, BuildPlan, default_tag, dockerquote, plan_build,
        render_dockerfile, requirements_txt)
    from envctl.build.run import (  # noqa: F401
        BuildResult, build_image, drop_context, find_built, image_layers, require_built, stamp_tree)
