"""An OCI registry, spoken to directly over its HTTP API (distribution's /v2/): what ``envctl push``
needs beyond the engine's own push, which moves the layers.

The engine's push gives an image's config the build's clock (``created`` and every history
entry), so two builds of one lock push two digests.  ``normalize_config`` sets those times to
SOURCE_DATE_EPOCH; ``RegistryClient`` uploads the new config blob and PUTs a manifest naming it,
so the digest depends on the lock and the layers alone.  Credentials are the engine's own login
(``docker login``, read through the docker SDK's config loader), never envctl's.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from envctl.errors import EnvctlError, UsageError

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TIMEOUT = 30  # seconds a registry call may take; blobs here are configs and manifests, a few KB
# distribution's grammar for one path component of a repository name
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"(?::[0-9]{1,5})?$")
LABEL_CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class Registry:
    """``HOST[:PORT][/PREFIX]``: where images go, and under which path."""

    host: str  # host[:port]
    prefix: str  # "" or "team/images"

    @classmethod
    def parse(cls, text: str, *, option: str = "--registry") -> Registry:
        host, _, prefix = text.strip().rstrip("/").partition("/")
        hint = "give HOST[:PORT][/PREFIX], e.g. 127.0.0.1:5000 or registry.example.com/ml"
        if "://" in text:
            raise UsageError(f"{option} {text}: give the registry without a scheme", hint=hint)
        # docker reads a first component without '.' or ':' (other than localhost) as a Docker Hub user
        if not _HOST.match(host) or not ("." in host or ":" in host or host == "localhost"):
            raise UsageError(f"{option} {text}: {host!r} is not a registry host[:port]", hint=hint)
        bad = [c for c in prefix.split("/") if not _COMPONENT.match(c)] if prefix else []
        if bad:
            raise UsageError(f"{option} {text}: {bad[0]!r} is not a repository path component "
                             f"(lowercase letters, digits, . _ -)", hint=hint)
        return cls(host, prefix)

    def __str__(self) -> str:
        return f"{self.host}/{self.prefix}" if self.prefix else self.host

    def repository(self, name: str) -> str:
        """The repository path of image ``name`` in this registry (without the host)."""
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def loopback(self) -> bool:
        """Spoken to over plain HTTP, as the engine does for 127.0.0.0/8 (its default insecure range)."""
        name = self.host.rsplit(":", 1)[0] if not self.host.startswith("[") else self.host
        return name == "localhost" or name.startswith("127.") or name == "[::1]"


def epoch_time(epoch: int) -> str:
    """SOURCE_DATE_EPOCH as the RFC 3339 time image configs carry."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_config(config: dict[str, Any], *, epoch: int) -> bytes:
    """The image config with every build-clock time set to ``epoch`` and the fields that name the
    build's container dropped, serialized canonically (sorted keys, no spaces): equal layers and
    equal instructions give equal bytes, hence an equal digest (pure)."""
    when = epoch_time(epoch)
    out = {k: v for k, v in config.items() if k not in ("container", "container_config")}
    out["created"] = when
    out["history"] = [{**h, "created": when} if "created" in h else h for h in config.get("history") or []]
    labels = (out.get("config") or {}).get("Labels")
    if isinstance(labels, dict) and LABEL_CREATED in labels:
        out["config"] = {**out["config"], "Labels": {**labels, LABEL_CREATED: when}}
    return json.dumps(out, sort_keys=True, separators=(",", ":")).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryError(EnvctlError):
    """The registry refused or could not be reached."""


class RegistryClient:
    """The few /v2/ calls a push needs: manifests and blobs, read and written."""

    def __init__(self, registry: Registry, *, timeout: float = TIMEOUT) -> None:
        self.registry = registry
        self.base = f"{'http' if registry.loopback else 'https'}://{registry.host}"
        self.timeout = timeout
        self._auth: str | None = None  # the Authorization header once a challenge was answered

    def manifest(self, repo: str, reference: str) -> tuple[bytes, str]:
        """The manifest ``reference`` (a tag or digest) of ``repo``: its bytes and its digest."""
        status, headers, body = self._request("GET", f"/v2/{repo}/manifests/{reference}", repo,
                                              headers={"Accept": f"{MANIFEST_V2}, {OCI_MANIFEST}"})
        return body, headers.get("Docker-Content-Digest") or digest_of(body)

    def has_manifest(self, repo: str, digest: str) -> bool:
        status, _h, _b = self._request("HEAD", f"/v2/{repo}/manifests/{digest}", repo, ok=(200, 404),
                                       headers={"Accept": f"{MANIFEST_V2}, {OCI_MANIFEST}"})
        return status == 200

    def blob(self, repo: str, digest: str) -> bytes:
        body = self._request("GET", f"/v2/{repo}/blobs/{digest}", repo)[2]
        if digest_of(body) != digest:
            raise RegistryError(f"{self.registry}: blob {digest} of {repo} does not match its digest",
                                hint="the registry's storage is damaged; push again")
        return body

    def put_blob(self, repo: str, data: bytes) -> str:
        """Upload ``data`` (one monolithic PUT) unless the registry has it; its digest."""
        digest = digest_of(data)
        if self._request("HEAD", f"/v2/{repo}/blobs/{digest}", repo, ok=(200, 404))[0] == 200:
            return digest
        _s, headers, _b = self._request("POST", f"/v2/{repo}/blobs/uploads/", repo, ok=(202,))
        location = headers.get("Location") or ""
        if not location.startswith("http"):
            location = self.base + location
        location += ("&" if "?" in location else "?") + f"digest={digest}"
        self._request("PUT", location, repo, data=data, ok=(201,),
                      headers={"Content-Type": "application/octet-stream"})
        return digest

    def put_manifest(self, repo: str, reference: str, manifest: bytes, media_type: str) -> str:
        """PUT ``manifest`` as ``reference`` (a tag); its digest, checked against the registry's."""
        _s, headers, _b = self._request("PUT", f"/v2/{repo}/manifests/{reference}", repo, data=manifest,
                                        ok=(201,), headers={"Content-Type": media_type})
        digest = digest_of(manifest)
        answered = headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise RegistryError(f"{self.registry}: {repo}:{reference} stored as {answered}, not {digest}",
                                hint="the registry rewrote the manifest; push to a registry that keeps it")
        return digest

    # -- transport -----------------------------------------------------------
    def _request(self, method: str, path: str, repo: str, *, data: bytes | None = None,
                 headers: dict[str, str] | None = None, ok: tuple[int, ...] = (200,)) -> tuple[int, dict, bytes]:
        url = path if path.startswith("http") else self.base + path
        for attempt in range(2):  # the second after answering an authentication challenge
            request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
            if self._auth:
                request.add_header("Authorization", self._auth)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                    status, answer, body = resp.status, dict(resp.headers), resp.read()
            except urllib.error.HTTPError as exc:
                status, answer, body = exc.code, dict(exc.headers), exc.read()
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise RegistryError(f"registry {self.registry.host} not reachable ({method} {path}): {reason}",
                                    hint="start it (scripts/registry-up.sh for a local one) or check the address"
                                    ) from None
            if status == 401 and attempt == 0 and self._answer(answer.get("WWW-Authenticate") or "", repo):
                continue
            break
        if status not in ok:
            detail = body[:200].decode(errors="replace").strip()
            hint = ("log in with the engine: docker login " + self.registry.host if status in (401, 403)
                    else "check the registry address and its log")
            raise RegistryError(f"registry {self.registry.host}: {method} {path} answered {status} {detail}",
                                hint=hint)
        return status, answer, body

    def _answer(self, challenge: str, repo: str) -> bool:
        """Set the Authorization header a ``WWW-Authenticate`` challenge asks for, from the engine's
        login; False when there is no login for this registry."""
        from envctl.engine import registry_login

        login = registry_login(self.registry.host)
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic" and login:
            self._auth = "Basic " + login
            return True
        if scheme.lower() != "bearer":
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = urllib.parse.urlsplit(fields.get("realm", ""))
        loopback = realm.hostname in ("localhost", "127.0.0.1", "::1")
        if not (realm.scheme == "https" or (realm.scheme == "http" and loopback)):  # the login goes there
            raise RegistryError(f"registry {self.registry.host} asks for a token from {fields.get('realm')!r}: "
                                f"not https, so envctl sends no login there",
                                hint="check the registry's address; its token service must use https")
        query = urllib.parse.urlencode({"service": fields.get("service", ""),
                                        "scope": f"repository:{repo}:pull,push"})
        request = urllib.request.Request(f"{fields.get('realm', '')}?{query}")
        if login:
            request.add_header("Authorization", "Basic " + login)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                answer = json.loads(resp.read())
        except (OSError, ValueError):
            return False
        token = answer.get("token") or answer.get("access_token")
        self._auth = f"Bearer {token}" if token else None
        return bool(token)

