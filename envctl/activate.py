"""The activation script ``envctl setup`` writes into a prefix (``envctl-activate.sh``).

A pure function of the image name and the prefix.  The prefix is the user's text and lands in
shell code, so every use of it is quoted with ``shlex.quote``: a folder named
``/tmp/p $(touch x)`` is a folder, never a command.
"""

from __future__ import annotations

import shlex
from pathlib import Path


def activation_script(name: str, prefix: Path, *, venv: bool) -> str:
    """A POSIX-shell script to source: PATH once however often it is sourced, VIRTUAL_ENV for a
    venv and CONDA_PREFIX for a conda prefix (tools read them to find the environment), and a
    ``deactivate`` function that puts back what it changed."""
    var = "VIRTUAL_ENV" if venv else "CONDA_PREFIX"
    # name matches the spec's NAME_RE (letters, digits, . _ -): safe in a comment as it is.
    here, bin_dir = shlex.quote(str(prefix)), shlex.quote(f"{prefix}/bin")
    return f"""# source this file to use the {name} environment (made by envctl setup); `deactivate` undoes it
if [ "${{_ENVCTL_PREFIX-}}" != {here} ]; then
    # Another environment (envctl's or a venv's) is active: leave it first, as venv's activate does.
    # Only a shell function is one: `command -v` prints a function's bare name, a program's path
    # (pyenv puts a `deactivate` shim on PATH that belongs to no environment).
    if [ "$(command -v deactivate 2>/dev/null)" = deactivate ]; then deactivate; fi
    _ENVCTL_PREFIX={here}
    _ENVCTL_OLD_PATH="$PATH"
    _ENVCTL_OLD_{var}="${{{var}-}}"
    _ENVCTL_HAD_{var}="${{{var}+1}}"
    deactivate() {{
        export PATH="$_ENVCTL_OLD_PATH"
        if [ -n "$_ENVCTL_HAD_{var}" ]; then export {var}="$_ENVCTL_OLD_{var}"; else unset {var}; fi
        unset _ENVCTL_PREFIX _ENVCTL_OLD_PATH _ENVCTL_OLD_{var} _ENVCTL_HAD_{var}
        unset -f deactivate
        hash -r 2>/dev/null || true
    }}
fi
case ":$PATH:" in
    *:{bin_dir}:*) ;;
    *) export PATH={bin_dir}:"$PATH" ;;
esac
export {var}={here}
hash -r 2>/dev/null || true
"""
