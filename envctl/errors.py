"""One error hierarchy for envctl.

Every error says what failed, where (file and key, image, package, URL) and
what to do.  The CLI prints ``str(error)`` as one line plus the hint and exits
with ``error.exit_code``; anything that is not an ``EnvctlError`` is a bug and
keeps its traceback.
"""

from __future__ import annotations


# The longest error line or hint envctl prints.  Messages echo what they were given (a name, a
# URL, a value of a document); a forged document's value can be megabytes, so the middle of an
# overlong line is cut: its start says what failed and where, its end what to do.
MAX_LINE = 500


def clip(text: str, limit: int = MAX_LINE) -> str:
    """``text`` as one line of at most ``limit`` characters (newlines shown as \\n; an ellipsis where
    the middle was cut)."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return text[:head] + "\u2026" + text[len(text) - (limit - head - 1):]


class EnvctlError(Exception):
    """Base class: a user-facing failure with a hint and an exit code."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = clip(message)
        super().__init__(message)
        self.message = message
        self.hint = clip(hint) if hint is not None else None

    def __str__(self) -> str:
        return self.message


class UsageError(EnvctlError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class SpecError(EnvctlError):
    """An image spec is malformed: names the file and key path."""

    exit_code = 2

    def __init__(self, path: str, key: str | None, problem: str, *, hint: str | None = None) -> None:
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}", hint=hint)
        self.path = path
        self.key = key
        self.problem = problem


class BrokenSpecError(EnvctlError):
    """One or more specs in the catalog cannot be read (the listing shows the others)."""

    exit_code = 2


class EnvctlNote(UserWarning):
    """Not an error: something the user should know while the command goes on (the CLI prints
    ``note: ...`` on stderr).  Core modules raise it with ``warnings.warn``, as they never print."""


class RenamedImageNote(EnvctlNote):
    """An image was asked for by its old name, which still resolves for a while."""


class MatrixError(EnvctlError):
    """A torch/CUDA/Python combination PyTorch never released."""

    exit_code = 2


class UnknownImageError(EnvctlError):
    """A name that is neither in the catalog nor of the form pytorch-X.Y-VARIANT."""

    exit_code = 2


class LockError(EnvctlError):
    """Locking failed: unsatisfiable, unreachable channel or index, bad lockfile."""


class PackageIndexError(EnvctlError):
    """A package index or file host answered something unusable: unreachable, an HTTP error,
    a page that is neither PEP 691 JSON nor PEP 503 HTML, wheel metadata that cannot be read,
    or a version string the project never uses."""


class StaleLockError(LockError):
    """The lockfile is missing or was made from another version of the spec."""


class LockfileError(LockError):
    """A lockfile's field breaks its grammar: a forged or damaged lock is bad input (exit 2)."""

    exit_code = 2


class UnknownPackageError(LockError):
    """The command line names a package the lock does not hold (bad input: exit 2)."""

    exit_code = 2


class CacheError(EnvctlError):
    """A cached or downloaded file does not match the hash the lock records."""


class EngineError(EnvctlError):
    """The Docker engine is unreachable or refused an operation."""


class BuildError(EnvctlError):
    """An image build failed; carries the failing step and the log path."""

    def __init__(self, message: str, *, hint: str | None = None, log_path: str | None = None,
                 step: str | None = None, tail: list[str] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.log_path = log_path
        self.step = step
        self.tail = tail or []


class ProbeError(EnvctlError):
    """The smoke probe could not run or did not print its JSON document."""


class RecordsError(EnvctlError):
    """The records database cannot be opened or written."""


class DamagedRecordsError(RecordsError):
    """The records database holds what no envctl wrote (a schema that is not a number, a stored
    document that is not JSON): bad input, exit 2."""

    exit_code = 2


class DamagedDocumentError(EnvctlError):
    """A document envctl reads (the release matrix, a probe JSON) breaks its format: names the
    document and the key."""

    exit_code = 2


class ArtifactError(EnvctlError):
    """An artifact is not a TorchScript/torch.export archive, or is unknown."""

    exit_code = 2


class NotPushedError(EnvctlError):
    """A remote target runs an image from a registry, and this lock's image was never pushed: bad
    input (push it first, or give --registry), exit 2."""

    exit_code = 2


class FleetError(EnvctlError):
    """A cluster could not take or follow tasks: its client commands missing, its controller
    unreachable, a job refused or still pending past the wait. ``results``: the tasks' results
    collected before it happened (kept and recorded by the workflow)."""

    def __init__(self, message: str, *, hint: str | None = None, results: list | None = None) -> None:
        super().__init__(message, hint=hint)
        self.results = list(results or [])


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so it unwinds like Ctrl-C: every ``finally`` and
    ``except BaseException`` that stops children, removes containers and temp files runs."""
