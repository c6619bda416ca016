"""The one seam to Docker: only this module touches the docker SDK.

It turns SDK and API errors into ``EngineError``/``BuildError`` that say what
to do, streams build output line by line, and runs containers with the limits
envctl needs (GPUs through device requests, no network, read-only mounts).
"""

from __future__ import annotations

import json
import re
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from envctl.errors import BuildError, EngineError

# Seconds an ordinary engine call (ping, inspect, list, tag) may take: a socket that accepts and
# never answers must not hang envctl.  Builds and container waits carry their own, longer limits.
CALL_TIMEOUT = 30
BUILD_TIMEOUT = 6 * 3600

START_HINT = ("start the engine: sudo scripts/engine-up.sh (installs Debian's docker.io if needed), "
              "or systemctl start docker; set DOCKER_HOST if it listens elsewhere")


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: list[str]
    labels: dict[str, str]
    size: int
    created: str

    @property
    def short_id(self) -> str:
        return self.id.split(":")[-1][:12]


@dataclass
class RunResult:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    oom_killed: bool = False


@dataclass
class BuildOutput:
    image_id: str
    log: list[str] = field(default_factory=list)


class Engine:
    """A connected Docker engine."""

    def __init__(self, client) -> None:
        self.client = client

    @classmethod
    def connect(cls, timeout: int | None = None) -> Engine:
        import os

        import docker

        if timeout is None:
            try:
                timeout = max(1, int(os.environ.get("ENVCTL_ENGINE_TIMEOUT", CALL_TIMEOUT)))
            except ValueError:
                timeout = CALL_TIMEOUT
        socket = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            client = docker.from_env(timeout=timeout)
            client.ping()
        except Exception as exc:  # noqa: BLE001 - docker and requests errors (timeouts included) alike
            what = f"did not answer within {timeout}s" if "timed out" in str(exc).lower() else _short(exc)
            raise EngineError(f"Docker engine at {socket} not reachable: {what}", hint=START_HINT) from None
        engine = cls(client)
        engine.socket = socket
        return engine

    def version(self) -> str:
        return str(self.client.version().get("Version", "?"))

    # -- images ------------------------------------------------------------
    def image(self, ref: str) -> ImageInfo | None:
        from docker.errors import ImageNotFound

        try:
            img = self.client.images.get(ref)
        except ImageNotFound:
            return None
        except Exception as exc:
            raise EngineError(f"cannot inspect image {ref}: {_short(exc)}", hint=START_HINT) from None
        return _info(img)

    def info(self) -> dict:
        return self._call("read the engine's info", self.client.info)

    def images(self, label: str) -> list[ImageInfo]:
        found = self._call("list images", self.client.images.list, filters={"label": label})
        return [_info(img) for img in found]

    def tag(self, image_id: str, ref: str) -> None:
        repo, tag = split_ref(ref)
        self._call(f"tag {ref}", lambda: self.client.images.get(image_id).tag(repo, tag))

    def untag(self, ref: str) -> None:
        """Remove one name; the image stays while another name or image needs it."""
        from docker.errors import APIError, ImageNotFound

        try:
            self.client.api.remove_image(ref, noprune=False)
        except (ImageNotFound, APIError):
            pass

    def history(self, image_id: str) -> list[dict]:
        return self._call(f"read the history of {image_id}", self.client.api.history, image_id)

    def read_folder(self, image: str, path: str) -> dict[str, bytes]:
        """The regular files directly in ``path`` of an image (name -> bytes), without running it."""
        import io

        def read() -> dict[str, bytes]:
            container = self.client.containers.create(image, command=["true"], network_disabled=True)
            try:
                try:
                    stream, _stat = container.get_archive(path)
                except Exception as exc:  # noqa: BLE001 - a missing folder is an empty answer
                    if "not found" in str(exc).lower() or "no such" in str(exc).lower():
                        return {}
                    raise
                buf = io.BytesIO(b"".join(stream))
            finally:
                container.remove(force=True)
            out = {}
            with tarfile.open(fileobj=buf) as tar:
                for member in tar.getmembers():
                    parts = member.name.split("/")
                    if member.isfile() and len(parts) == 2:
                        out[parts[1]] = tar.extractfile(member).read()
            return out

        return self._call(f"read {path} from {image}", read)

    def remove_image(self, ref: str) -> None:
        from docker.errors import ImageNotFound

        try:
            self.client.images.remove(ref, force=True)
        except ImageNotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - engine errors become envctl errors
            raise EngineError(f"cannot remove image {ref}: {_short(exc)}") from None

    @contextmanager
    def _long_calls(self):
        """Calls that may rightly take long (import, push): the build limit instead of CALL_TIMEOUT."""
        api = self.client.api
        before, api.timeout = api.timeout, BUILD_TIMEOUT
        try:
            yield
        finally:
            api.timeout = before

    def _call(self, what: str, fn, *args, **kwargs):
        """One SDK call, its errors turned into EngineError naming what was being done."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - docker and requests errors alike
            raise EngineError(f"cannot {what}: {_short(exc)}", hint=START_HINT
                              if "connection" in str(exc).lower() else None) from None

    def import_rootfs(self, tar_path: Path, ref: str, *, changes: list[str]) -> str:
        repo, tag = split_ref(ref)
        try:
            with self._long_calls():
                out = self.client.api.import_image_from_file(str(tar_path), repository=repo, tag=tag,
                                                             changes=changes)
        except Exception as exc:
            raise EngineError(f"docker import of {ref} failed: {_short(exc)}",
                              hint="check free disk space (df -h /var/lib/docker)") from None
        status = json.loads(out.strip().splitlines()[-1]) if isinstance(out, str) else {}
        if "error" in status:
            raise EngineError(f"docker import of {ref} failed: {status['error']}")
        info = self.image(ref)
        if info is None:
            raise EngineError(f"docker import of {ref} gave no image", hint="check the engine log")
        return info.id

    # -- build -------------------------------------------------------------
    def builder(self) -> str:
        """'buildkit' when a Docker CLI with BuildKit talks to this engine, else 'classic'.

        The SDK only drives the classic builder, whose multi-stage COPY --from doubles the
        cost of writing a GPU-sized environment; BuildKit bind-mounts the packages into one
        RUN instead (faster, and nothing of them reaches a layer).  ENVCTL_BUILDER forces one.
        """
        if not hasattr(self, "_builder"):
            self._builder, self._cli = detect_builder()
        return self._builder

    def build(self, context: Path, *, tag: str, dockerfile: str = "Dockerfile", labels: dict[str, str],
              platform: str | None = None, network_mode: str = "none", no_cache: bool = False,
              on_line: Callable[[str], None] = lambda _l: None) -> BuildOutput:
        """Build a context folder with the engine's builder, streamed; BuildError with the log on failure."""
        if self.builder() == "buildkit":
            return self._build_buildkit(context, tag=tag, dockerfile=dockerfile, labels=labels, platform=platform,
                                        network_mode=network_mode, no_cache=no_cache, on_line=on_line)
        return self._build_classic(context, tag=tag, dockerfile=dockerfile, labels=labels, platform=platform,
                                   network_mode=network_mode, no_cache=no_cache, on_line=on_line)

    def _build_buildkit(self, context: Path, *, tag: str, dockerfile: str, labels: dict[str, str],
                        platform: str | None, network_mode: str, no_cache: bool,
                        on_line: Callable[[str], None]) -> BuildOutput:
        import os
        import subprocess
        import tempfile

        cli, env = self._cli
        output = BuildOutput(image_id="")
        with tempfile.TemporaryDirectory(prefix="envctl-iid-") as tmp:
            iid = Path(tmp) / "iid"
            cmd = [*cli, "--progress", "plain", "-f", str(context / dockerfile), "-t", tag, "--network",
                   network_mode, "--iidfile", str(iid)]
            cmd += [f"--label={k}={v}" for k, v in sorted(labels.items())]
            cmd += ["--platform", platform] if platform else []
            cmd += ["--no-cache"] if no_cache else []
            with subprocess.Popen(cmd + [str(context)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env={**os.environ, **env}) as proc:
                try:
                    for raw in proc.stdout:
                        line = raw.rstrip("\n")
                        output.log.append(line)
                        on_line(line)
                except BaseException:  # Ctrl-C or a failing callback: leave no build running
                    proc.kill()
                    raise
                code = proc.wait()
            if code != 0:
                errors = [ln for ln in output.log if ln.startswith("ERROR") or "error:" in ln.lower()]
                raise BuildError(_first_line(errors[-1] if errors else f"docker build exited {code}"),
                                 tail=output.log[-20:], step=_last_step(output.log))
            output.image_id = iid.read_text().strip()
        return output

    def _build_classic(self, context: Path, *, tag: str, dockerfile: str, labels: dict[str, str],
                       platform: str | None, network_mode: str, no_cache: bool,
                       on_line: Callable[[str], None]) -> BuildOutput:
        output = BuildOutput(image_id="")
        stream = self.client.api.build(
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
                    raise BuildError(_first_line(message), tail=output.log[-20:],
                                     step=_last_step(output.log))
        except BuildError:
            raise
        except Exception as exc:
            raise BuildError(f"build of {tag} broke off: {_short(exc)}", tail=output.log[-20:],
                             step=_last_step(output.log)) from None
        if not output.image_id:
            m = re.search(r"Successfully built ([0-9a-f]+)", "\n".join(output.log))
            output.image_id = self.image(m.group(1) if m else tag).id
        return output

    def push(self, ref: str, on_line: Callable[[str], None] = lambda _l: None) -> None:
        repo, tag = split_ref(ref)
        hint = "check the registry address and that you are logged in (docker login)"
        try:
            with self._long_calls():
                chunks = self.client.api.push(repo, tag=tag, stream=True, decode=True)  # its socket keeps that limit
            for chunk in chunks:
                if "error" in chunk:
                    raise EngineError(f"push of {ref} failed: {chunk['error']}", hint=hint)
                if "status" in chunk:
                    on_line(f"{chunk.get('id', '')} {chunk['status']}".strip())
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise EngineError(f"push of {ref} failed: {_short(exc)}", hint=hint) from None

    # -- run ---------------------------------------------------------------
    def run(self, image: str, command: list[str], *, mounts: Iterable[tuple[str, str, bool]] = (),
            gpus: str | int | None = None, network: str = "none", timeout: float = 600,
            environment: dict[str, str] | None = None, mem_limit: str | None = None,
            nano_cpus: int | None = None, pids_limit: int | None = None,
            stdin_data: bytes | None = None, sandbox: bool = False, exec_tmp: bool = False) -> RunResult:
        """Run ``command`` in a fresh container; returns exit code and output, removes the container."""
        from docker.types import DeviceRequest, Mount

        device_requests = None
        if gpus not in (None, "none", 0, "0"):
            count = -1 if gpus == "all" else int(gpus)
            device_requests = [DeviceRequest(count=count, capabilities=[["gpu"]])]
        kwargs = dict(
            image=image, command=command, detach=True, network_mode=network,
            mounts=[Mount(target=t, source=s, type="bind", read_only=ro) for s, t, ro in mounts],
            environment=environment or {}, device_requests=device_requests,
            mem_limit=mem_limit, nano_cpus=nano_cpus, pids_limit=pids_limit)
        if sandbox:  # untrusted input (artifacts): nothing to write but /tmp, no root, no capabilities
            # exec_tmp: AOTInductor packages unpack their compiled model into /tmp and dlopen it
            # (Docker mounts a tmpfs noexec unless told otherwise)
            tmp_options = "rw,exec,nosuid,nodev,size=512m" if exec_tmp else "rw,nosuid,nodev,size=512m"
            kwargs.update(read_only=True, tmpfs={"/tmp": tmp_options}, user="65534:65534",
                          cap_drop=["ALL"], security_opt=["no-new-privileges"],
                          environment={"HOME": "/tmp", **(environment or {})})
        # Created, then started: a start that fails (no GPU runtime, say) or is interrupted must
        # not leave a created container behind, as docker-py's run() would.
        container = None
        try:
            container = self.client.containers.create(
                **{k: v for k, v in kwargs.items() if v is not None and k != "detach"})
            container.start()
        except BaseException as exc:
            if container is not None:
                try:
                    container.remove(force=True)
                except Exception:  # noqa: BLE001 - the original failure is the one to report
                    pass
            if not isinstance(exc, Exception):
                raise
            message = _short(exc)
            hint = None
            if "could not select device driver" in message:
                hint = "GPUs need the NVIDIA container toolkit on the host; run envctl doctor, or --gpus none"
            raise EngineError(f"cannot start a container of {image}: {message}", hint=hint) from None
        try:
            timed_out = False
            try:
                status = container.wait(timeout=timeout)
                code = status.get("StatusCode")
            except Exception:  # requests' ReadTimeout: the container ran past its time
                timed_out, code = True, None
                try:
                    container.kill()
                except Exception:  # noqa: BLE001 - it may have ended meanwhile; removal below is forced
                    pass
            stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
            stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
            container.reload()
            oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
            return RunResult(code, stdout, stderr, timed_out=timed_out, oom_killed=oom)
        finally:
            container.remove(force=True)


def _info(img) -> ImageInfo:
    attrs = img.attrs
    return ImageInfo(id=img.id, tags=list(img.tags), labels=dict(attrs.get("Config", {}).get("Labels") or {}),
                     size=int(attrs.get("Size", 0)), created=str(attrs.get("Created", "")))


def split_ref(ref: str) -> tuple[str, str]:
    """'host:5000/repo:tag' -> ('host:5000/repo', 'tag'); no tag means 'latest'."""
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(ref)
    return repo, tag or "latest"


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


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return _first_line(text)[:300]


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text)


def _last_step(log: list[str]) -> str | None:
    """The last build step started: classic 'Step 3/9 : RUN ...' or BuildKit '#7 [2/3] RUN ...'."""
    steps = [ln for ln in log if re.match(r"^(Step \d+/\d+ :|#\d+ \[[^\]]*\d+/\d+\])", ln)]
    return steps[-1] if steps else None


def detect_builder() -> tuple[str, tuple[list[str], dict[str, str]] | None]:
    import os
    import shutil
    import subprocess

    forced = os.environ.get("ENVCTL_BUILDER")
    if forced == "classic":
        return "classic", None
    for cli in dict.fromkeys(filter(None, [shutil.which("docker"), "/usr/bin/docker"])):
        if not Path(cli).exists():
            continue
        buildx = subprocess.run([cli, "buildx", "version"], capture_output=True, text=True)
        if buildx.returncode == 0:
            return "buildkit", ([cli, "buildx", "build", "--load"], {})
        version = subprocess.run([cli, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True)
        major = re.match(r"(\d+)", version.stdout.strip())
        if major and int(major.group(1)) < 23:  # the legacy CLI has BuildKit built in
            return "buildkit", ([cli, "build"], {"DOCKER_BUILDKIT": "1"})
    if forced == "buildkit":
        raise EngineError("ENVCTL_BUILDER=buildkit but no Docker CLI with BuildKit was found",
                          hint="install the docker buildx plugin, or unset ENVCTL_BUILDER")
    return "classic", None
