"""Image builds, streamed line by line: BuildKit through the docker CLI where one talks to the
engine, else the SDK's classic builder.  A failure is a BuildError with the log's tail and the
last step started."""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from envctl.errors import BuildError, EngineError, UsageError

BUILD_TIMEOUT = 6 * 3600  # seconds a build may stream for


@dataclass
class BuildOutput:
    image_id: str
    log: list[str] = field(default_factory=list)


def detect_builder() -> tuple[str, tuple[list[str], dict[str, str]] | None]:
    """('buildkit', (the build command line, its environment)) where a Docker CLI with BuildKit is
    installed, else ('classic', None).  ENVCTL_BUILDER=classic|buildkit forces one."""
    import os
    import shutil
    import subprocess

    forced = os.environ.get("ENVCTL_BUILDER") or None
    if forced not in (None, "classic", "buildkit"):  # a typo must not pick a builder unseen
        raise UsageError(f"ENVCTL_BUILDER={forced}: choose classic or buildkit",
                         hint="unset it to use BuildKit where the docker CLI has it, else the classic builder")
    if forced == "classic":
        return "classic", None
    env = cli_env()
    for cli in dict.fromkeys(filter(None, [shutil.which("docker"), "/usr/bin/docker"])):
        if not Path(cli).exists():
            continue
        buildx = subprocess.run([cli, "buildx", "version"], capture_output=True, text=True, env={**os.environ, **env})
        if buildx.returncode == 0:
            return "buildkit", ([cli, "buildx", "build", "--load"], env)
        version = subprocess.run([cli, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True,
                                 env={**os.environ, **env})
        major = re.match(r"(\d+)", version.stdout.strip())
        if major and int(major.group(1)) < 23:  # the legacy CLI has BuildKit built in
            return "buildkit", ([cli, "build"], {"DOCKER_BUILDKIT": "1", **env})
    if forced == "buildkit":
        raise EngineError("ENVCTL_BUILDER=buildkit but no Docker CLI with BuildKit was found",
                          hint="install the docker buildx plugin, or unset ENVCTL_BUILDER")
    return "classic", None


def cli_env() -> dict[str, str]:
    """DOCKER_CONFIG for every docker CLI envctl runs.  The user's own where there is one (their
    registry logins and CLI plugins live there); on a machine without one, a folder under
    envctl's cache, so that the CLI (buildx keeps its state there) does not create ~/.docker."""
    import os

    if os.environ.get("DOCKER_CONFIG") or (Path.home() / ".docker").is_dir():
        return {}
    from envctl.fsio import default_root
    return {"DOCKER_CONFIG": str(default_root() / "docker-config")}


def build_with_cli(cli: tuple[list[str], dict[str, str]], context: Path, *, tag: str, dockerfile: str,
                   labels: dict[str, str], platform: str | None, network_mode: str, no_cache: bool,
                   on_line: Callable[[str], None]) -> BuildOutput:
    """BuildKit through the docker CLI (``cli``: what detect_builder found)."""
    import os
    import subprocess
    import tempfile

    from envctl import children

    command, env = cli
    output = BuildOutput(image_id="")
    with tempfile.TemporaryDirectory(prefix="envctl-iid-") as tmp:
        iid = Path(tmp) / "iid"
        cmd = [*command, "--progress", "plain", "-f", str(context / dockerfile), "-t", tag, "--network",
               network_mode, "--iidfile", str(iid)]
        cmd += [f"--label={k}={v}" for k, v in sorted(labels.items())]
        cmd += ["--platform", platform] if platform else []
        cmd += ["--no-cache"] if no_cache else []
        proc: subprocess.Popen | None = None
        try:
            with children.interrupts_deferred():
                proc = subprocess.Popen(cmd + [str(context)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env={**os.environ, **env})
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                output.log.append(line)
                on_line(line)
            code = proc.wait()
        except BaseException:  # Ctrl-C or a failing callback: leave no build running
            if proc is not None:
                children.kill(proc)
            raise
        finally:
            if proc is not None:
                proc.stdout.close()
        if code != 0:
            errors = [ln for ln in output.log if ln.startswith("ERROR") or "error:" in ln.lower()]
            raise BuildError(first_line(errors[-1] if errors else f"docker build exited {code}"),
                             tail=output.log[-20:], step=last_step(output.log))
        output.image_id = iid.read_text().strip()
    return output


def build_classic(api, context: Path, *, tag: str, dockerfile: str, labels: dict[str, str],
                  platform: str | None, network_mode: str, no_cache: bool, on_line: Callable[[str], None],
                  image_id: Callable[[str], str]) -> BuildOutput:
    """The SDK's classic builder (``api``: a docker APIClient); ``image_id`` looks up the id of a
    ref where the stream did not give it."""
    output = BuildOutput(image_id="")
    stream = api.build(
        fileobj=_tar_context(context), custom_context=True, dockerfile=dockerfile,
        tag=tag, labels=labels, rm=True, forcerm=True, pull=False, decode=True, platform=platform,
        network_mode=network_mode, nocache=no_cache, timeout=BUILD_TIMEOUT)
    try:
        for chunk in stream:
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    output.log.append(line)
                    on_line(line)
            if "aux" in chunk and "ID" in chunk["aux"]:
                output.image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                message = chunk["error"].strip()
                output.log.append(message)
                on_line(message)
                raise BuildError(first_line(message), tail=output.log[-20:], step=last_step(output.log))
    except BuildError:
        raise
    except Exception as exc:
        raise BuildError(f"build of {tag} broke off: {short(exc)}", tail=output.log[-20:],
                         step=last_step(output.log)) from None
    if not output.image_id:
        m = re.search(r"Successfully built ([0-9a-f]+)", "\n".join(output.log))
        output.image_id = image_id(m.group(1) if m else tag)
    return output


def _tar_context(context: Path):
    """The build context as an uncompressed tar on disk (wheels are compressed already, and a
    GPU context is GBs: not for memory), members in sorted order with uid/gid/mtime reset so
    the layer cache stays stable between runs."""
    import tempfile

    buf = tempfile.TemporaryFile()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(context.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(context)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isfile():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    buf.seek(0)
    return buf


# docker-py's APIError: '500 Server Error for http+docker://localhost/v1.41/...: Internal Server
# Error ("the engine's own message")'; the engine's message is what says what went wrong.
_API_ERROR = re.compile(r'^\d{3} (?:Client|Server) Error for \S+: [^(]*\("(?P<msg>.*)"\)$', re.S)


def short(exc: BaseException) -> str:
    """An SDK or API exception as one line of at most 300 characters: the engine's message
    alone where the SDK wraps it in the HTTP status and URL."""
    text = first_line(str(exc).strip() or type(exc).__name__)
    m = _API_ERROR.match(text)
    return (m.group("msg") if m else text)[:300]


def first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text)


def last_step(log: list[str]) -> str | None:
    """The last build step started: classic 'Step 3/9 : RUN ...' or BuildKit '#7 [2/3] RUN ...'."""
    steps = [ln for ln in log if re.match(r"^(Step \d+/\d+ :|#\d+ \[[^\]]*\d+/\d+\])", ln)]
    return steps[-1] if steps else None
