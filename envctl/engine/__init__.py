"""The one seam to Docker: only this package touches the docker SDK and the docker CLI.

``client`` is a connected engine; ``builders`` builds images, by BuildKit through the docker
CLI where there is one, else by the SDK's classic builder.  SDK and API errors become
``EngineError``/``BuildError`` that say what to do.
"""

from envctl.engine.builders import BuildOutput, detect_builder
from envctl.engine.client import Engine, ImageInfo, RunResult, registry_login, split_ref

__all__ = ["BuildOutput", "Engine", "ImageInfo", "RunResult", "detect_builder", "registry_login", "split_ref"]
