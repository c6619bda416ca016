"""``envctl build``: plan purely, then build with the engine.

``plan`` renders the Dockerfile, labels and layers from the spec and the lock with no
engine involved; ``layers`` decides which packages go in which image layer and folds
the layer manifests into the environment's content hash; ``context`` fills a build
context from the verified package cache; ``run`` drives the engine.  The scripts the
build itself runs live in ``envctl/builder/`` (standard library only).
"""

from envctl.build.context import RATTLER_PLATFORM, assemble_context, rattler_tool
from envctl.build.layers import Layer, plan_layers, tree_hash
from envctl.build.plan import (LABEL_LOCK_HASH, LABEL_SPEC, LABEL_SPEC_HASH, LABEL_TREE, BuildPlan, default_tag,
                               dockerquote, plan_build, render_dockerfile, requirements_txt)
from envctl.build.run import BuildResult, build_image, find_built, image_layers, require_built, stamp_tree

__all__ = [
    "LABEL_LOCK_HASH", "LABEL_SPEC", "LABEL_SPEC_HASH", "LABEL_TREE", "RATTLER_PLATFORM", "BuildPlan",
    "BuildResult", "Layer", "assemble_context", "build_image", "default_tag", "dockerquote", "find_built", "require_built",
    "image_layers", "plan_build", "plan_layers", "rattler_tool", "render_dockerfile", "requirements_txt",
    "stamp_tree", "tree_hash",
]
