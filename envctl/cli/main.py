"""Entry point: the typer app, its command groups, and the top-level error handler."""

import sys
from collections.abc import MutableMapping
from importlib import import_module

import typer
import typer.core

from envctl import __version__

# Each command and the module of envctl.cli whose register() adds it, in the order --help lists
# them.  A run imports only the module of the command it runs (10-15 ms less than building all).
COMMANDS = {
    "catalog": "catalog", "show": "catalog", "lock": "lock", "base": "engine_cmds", "build": "build",
    "push": "build", "images": "build", "verify": "verify", "smoke": "verify", "history": "verify",
    "setup": "setup_cmds", "export": "setup_cmds", "doctor": "setup_cmds", "artifacts": "compat_cmds",
    "compat": "compat_cmds", "fleet": "fleet_cmds",
    "cache": "cache_cmds", "bench": "bench_cmds", "matrix": "matrix_cmds",
}


def _lean_flags() -> None:
    """Keep pydantic off the start-up path: typer builds a pydantic TypeAdapter (0.15 s of imports)
    to coerce even --help's unset flag and a plain string argument.  A bool, str or int that is
    unset or already of its type needs no coercion; anything else still goes through typer."""
    core = getattr(typer, "core", None)
    param = getattr(core, "_TyperParameter", None)
    original = getattr(param, "process_value", None)
    if original is None or getattr(original, "_envctl_lean", False):
        return

    def process_value(self, ctx, value):
        kind = getattr(getattr(self, "type_descriptor", None), "annotation", None)
        if kind in (bool, str, int) and not (self.multiple or self.nargs == -1) and (
                value is None or (type(value) is kind)):
            if self.required and self.value_is_missing(value):
                raise typer.core._click.exceptions.MissingParameter(ctx=ctx, param=self)
            return self.callback(ctx, self, value) if self.callback is not None else value
        if _is_str_list(kind) and not self.required and (
                value is None or (isinstance(value, (tuple, list)) and all(type(v) is str for v in value))):
            # typer's own answer for a list of strings: the strings as a list, or the default when
            # none were given (None or an empty list, as declared)
            value = list(value) if value else (None if self.default is None else list(self.default))
            return self.callback(ctx, self, value) if self.callback is not None else value
        return original(self, ctx, value)

    process_value._envctl_lean = True
    param.process_value = process_value


def _is_str_list(kind) -> bool:
    import typing

    if typing.get_origin(kind) is typing.Union:  # Optional[List[str]]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = args[0] if len(args) == 1 else None
    return typing.get_origin(kind) is list and typing.get_args(kind) == (str,)


_lean_flags()


def _click_help() -> None:
    """Help lines as click writes them (typer 0.29 departs from it): a flag takes no value, so it
    shows no ``<bool>`` placeholder; an argument is ``NAME`` in the usage line (``[NAME]`` when
    optional), not ``{name}``, which reads like a template nobody filled in."""
    core = typer.core
    option_type = core.TyperOption.display_type_rich
    if getattr(option_type, "_envctl_click", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag and self.metavar is None else option_type(self, ctx)

    def usage_name(self) -> str:
        name = self.metavar or self.name.upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    display_type_rich._envctl_click = True
    core.TyperOption.display_type_rich = display_type_rich
    core.TyperArgument._usage_display_name = usage_name


_click_help()


class _Commands(MutableMapping):
    """The group's commands by name: every name known from COMMANDS, a command built when first
    looked up (click reads ``group.commands`` for dispatch, help, suggestions and completion)."""

    def __init__(self, built: dict | None = None) -> None:
        self._built: dict = dict(built or {})  # any command typer made from this module's own app

    def __getitem__(self, name: str):
        if name not in self._built and name in COMMANDS:
            self._build(COMMANDS[name])
        return self._built[name]

    def _build(self, module: str) -> None:
        sub = typer.Typer()
        sub.callback()(lambda: None)  # a group even where the module adds one command
        import_module(f"envctl.cli.{module}").register(sub)
        built = typer.main.get_command(sub).commands
        missing = sorted(n for n, m in COMMANDS.items() if m == module and n not in built)
        assert not missing, f"envctl.cli.{module}.register() adds no command {missing}"
        for command in built.values():
            _unwrap_help(command)
        self._built.update(built)

    def __setitem__(self, name: str, command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self):
        return iter(dict.fromkeys([*COMMANDS, *self._built]))

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._built))


def _unwrap_help(command) -> None:
    """One line per paragraph of help: docstrings wrap at the source's width, and typer's rich help
    keeps those breaks, so -h broke sentences where the source did.  The terminal wraps instead."""
    if command.help:
        import inspect

        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    for sub in getattr(command, "commands", {}).values():
        _unwrap_help(sub)


class _Group(typer.core.TyperGroup):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _Commands(self.commands)


app = typer.Typer(
    name="envctl",
    cls=_Group,
    help="Reproducible PyTorch+CUDA environments: catalog, lock, build, verify.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"envctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Reproducible PyTorch+CUDA environments for ML teams."""


def _on_sigterm(signum, frame) -> None:
    import signal

    from envctl.errors import Terminated

    global _terminated
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one unwinding; a second TERM must not cut the cleanup
    _terminated = True
    raise Terminated()


_terminated = False


def _fail(message: str, hint: str | None, exit_code: int) -> None:
    """One line and a hint on stderr; with --json also a JSON object on stdout, for scripts."""
    from envctl import console
    from envctl.errors import clip

    message, hint = clip(message), clip(hint) if hint is not None else None  # an OSError's too
    console.error(message, hint)
    if "--json" in sys.argv[1:] and not console.json_printed:
        console.print_json({"error": message, "hint": hint, "exit_code": exit_code})
    sys.exit(exit_code)


def run() -> None:
    """Console-script entry: envctl errors become one line, a hint and an exit code."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _run_app()
    finally:
        _stop_requests()
        # Interpreter exit collects garbage over every object of the ~400 modules a command loads
        # (15 ms of a 0.45 s warm lock) only to free memory the OS takes back anyway; frozen objects
        # are skipped.  atexit handlers (weakref finalizers: temporary folders), flushes and thread
        # joins still run; only a reference cycle's __del__ would not, and envctl's cleanup is
        # context managers and finalizers, never __del__.
        import gc

        gc.freeze()


def _show_notes() -> None:
    """Core modules never print: what they warn of as an ``EnvctlNote`` is one ``note:`` line on
    stderr (any other warning keeps Python's own form)."""
    import warnings

    from envctl.errors import EnvctlNote

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, EnvctlNote):
            from envctl import console

            console.status(f"note: {message}")
            return
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _run_app() -> None:
    from envctl.errors import EnvctlError, Terminated

    _show_notes()
    try:
        try:
            app(prog_name="envctl")  # also under python -m envctl: usage and completion name envctl
        except SystemExit:
            if _terminated:  # typer turns the interrupt into exit 130; SIGTERM's code is 143
                raise Terminated() from None
            raise
    except EnvctlError as exc:
        _fail(str(exc), exc.hint, exc.exit_code)
    except OSError as exc:
        # The machine's answer, not a bug: a full disk, a read-only mount, a folder where a file
        # belongs.  One line naming the path; the modules wrap the cases they can explain better.
        where = f"{exc.filename}: " if exc.filename else ""
        hints = {28: "free space on that disk, or point ENVCTL_CACHE / ENVCTL_RECORDS elsewhere",
                 30: "that file system is read-only: point envctl at a writable path",
                 13: "check the permissions of that path, or point envctl at a writable one"}
        _fail(f"{where}{exc.strerror or exc}", hints.get(exc.errno, "check that path"), 1)
    except Terminated:
        sys.stderr.write("terminated\n")
        sys.exit(143)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


def _stop_requests() -> None:
    """The interpreter joins the HTTP pool's threads before it exits: cut what they still wait on
    (after Ctrl-C or SIGTERM, a host that stalls would otherwise hold the exit until the deadline)."""
    http = sys.modules.get("envctl.pypi.http")
    if http is not None:
        http.abort()
