"""A connected Docker engine: images, imports, pushes, and containers run with the limits envctl
needs (GPUs through device requests, no network, read-only mounts).  Builds are in ``builders``.
"""

from __future__ import annotations

import json
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from envctl.engine.builders import BUILD_TIMEOUT, BuildOutput, build_classic, build_with_cli, detect_builder, short
from envctl.errors import EngineError, UsageError
from envctl.executors.base import multi_gpu_shm_gib

# Seconds an ordinary engine call (ping, inspect, list, tag) may take: a socket that accepts and
# never answers must not hang envctl.  Builds and container waits carry their own, longer limits.
CALL_TIMEOUT = 30

START_HINT = ("start the engine: sudo scripts/engine-up.sh (installs Debian's docker.io if needed), "
              "or systemctl start docker; set DOCKER_HOST if it listens elsewhere")


def call_timeout() -> float:
    """Seconds an engine call may take: ENVCTL_ENGINE_TIMEOUT when set (any finite number above 0,
    0.5 included), else CALL_TIMEOUT.  Anything else is refused: it was once read as 30 unseen."""
    import math
    import os

    raw = os.environ.get("ENVCTL_ENGINE_TIMEOUT", "").strip()
    if not raw:
        return CALL_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"ENVCTL_ENGINE_TIMEOUT={raw}: give the seconds an engine call may take, a finite "
                         f"number above 0", hint=f"unset it for the default, {CALL_TIMEOUT} s")
    return value


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


class Engine:
    """A connected Docker engine."""

    def __init__(self, client) -> None:
        self.client = client

    @classmethod
    def connect(cls, timeout: float | None = None) -> Engine:
        import os

        import docker

        if timeout is None:
            timeout = call_timeout()
        socket = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            client = docker.from_env(timeout=timeout)
            client.ping()
        except Exception as exc:  # noqa: BLE001 - docker and requests errors (timeouts included) alike
            what = f"did not answer within {timeout:g}s" if "timed out" in str(exc).lower() else short(exc)
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
            raise EngineError(f"cannot inspect image {ref}: {short(exc)}", hint=START_HINT) from None
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

    def layer_ids(self, image_id: str) -> list[str]:
        """The image's layers by content (the config's rootfs diff ids), bottom first."""
        attrs = self._call(f"inspect {image_id}", self.client.api.inspect_image, image_id)
        return list((attrs.get("RootFS") or {}).get("Layers") or [])

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
            raise EngineError(f"cannot remove image {ref}: {short(exc)}") from None

    def prune_build_cache(self) -> int:
        """Drop the engine's unused build cache; returns the bytes given back.  A removed image's
        layers stay in BuildKit's cache (6 GB and more for a CUDA image) until this runs: without
        it, removing images frees nothing on disk."""
        pruned = self._call("prune the build cache", lambda: self.client.api.prune_builds())
        return int((pruned or {}).get("SpaceReclaimed") or 0)

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
            raise EngineError(f"cannot {what}: {short(exc)}", hint=START_HINT
                              if "connection" in str(exc).lower() else None) from None

    def import_rootfs(self, tar_path: Path, ref: str, *, changes: list[str]) -> str:
        repo, tag = split_ref(ref)
        try:
            with self._long_calls():
                out = self.client.api.import_image_from_file(str(tar_path), repository=repo, tag=tag,
                                                             changes=changes)
        except Exception as exc:
            raise EngineError(f"docker import of {ref} failed: {short(exc)}",
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
        options = dict(tag=tag, dockerfile=dockerfile, labels=labels, platform=platform,
                       network_mode=network_mode, no_cache=no_cache, on_line=on_line)
        if self.builder() == "buildkit":
            return build_with_cli(self._cli, context, **options)
        return build_classic(self.client.api, context, image_id=lambda ref: self.image(ref).id, **options)

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
            raise EngineError(f"push of {ref} failed: {short(exc)}", hint=hint) from None

    # -- run ---------------------------------------------------------------
    def run(self, image: str, command: list[str], *, mounts: Iterable[tuple[str, str, bool]] = (),
            gpus: str | int | None = None, network: str = "none", timeout: float = 600,
            environment: dict[str, str] | None = None, mem_limit: str | None = None,
            nano_cpus: int | None = None, pids_limit: int | None = None,
            sandbox: bool = False, exec_tmp: bool = False) -> RunResult:
        """Run ``command`` in a fresh container; returns exit code and output, removes the container."""
        from docker.types import DeviceRequest, Mount

        device_requests = None
        shm = multi_gpu_shm_gib(gpus)
        if gpus not in (None, "none", 0, "0"):
            count = -1 if gpus == "all" else int(gpus)
            device_requests = [DeviceRequest(count=count, capabilities=[["gpu"]])]
        kwargs = dict(
            image=image, command=command, detach=True, network_mode=network,
            mounts=[Mount(target=t, source=s, type="bind", read_only=ro) for s, t, ro in mounts],
            environment=environment or {}, device_requests=device_requests,
            mem_limit=mem_limit, nano_cpus=nano_cpus, pids_limit=pids_limit,
            shm_size=f"{shm}g" if shm else None)  # NCCL between several GPUs: see multi_gpu_shm_gib
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
            message = short(exc)
            hint = None
            if "could not select device driver" in message:
                hint = "GPUs need the NVIDIA container toolkit on the host; run envctl doctor, or --gpus none"
            shown = image.split(":")[-1][:12] if image.startswith("sha256:") else image
            raise EngineError(f"cannot start a container of {shown}: {message}", hint=hint) from None
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


def registry_login(host: str) -> str | None:
    """base64(user:password) of the engine's own login for registry ``host`` (``docker login``:
    its config file and credential helpers, read as the engine's client reads them); None when
    there is none.  envctl never takes credentials of its own."""
    import base64

    try:
        from docker import auth

        found = auth.resolve_authconfig(auth.load_config(), registry=host) or {}
    except Exception:  # noqa: BLE001 - an unreadable docker config is no login
        return None
    user = found.get("username") or found.get("Username")
    password = found.get("password") or found.get("Password")
    if not user or not password:
        return None
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def split_ref(ref: str) -> tuple[str, str]:
    """'host:5000/repo:tag' -> ('host:5000/repo', 'tag'); no tag means 'latest'."""
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(ref)
    return repo, tag or "latest"
