"""The smoke probe's report: check records, one-line error messages, JSON output.

Part of the in-image smoke probe (see smoke.py): standard library only, Python >= 3.9.
"""
from __future__ import annotations

import json
import math
import os


def check(name, status, message, details=None):
    """One entry of the report's "checks" list; status is pass, fail, warn or skip."""
    c = {"name": name, "status": status, "message": message}
    if details is not None:
        c["details"] = details
    return c


def first_line(text):
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def error_line(exc):
    """One line naming an exception: "Type: first line" (+ next line when the first ends in ':')."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = lines[0] if lines else ""
    if msg.endswith(":") and len(lines) > 1:
        msg = f"{msg} {lines[1]}"
    if len(msg) > 400:
        msg = msg[:397] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def add_warnings(sink, caught):
    """Append caught warnings to `sink` as one-line texts, each once."""
    for w in caught:
        text = f"{w.category.__name__}: {first_line(w.message)}"
        if text not in sink:
            sink.append(text)


def sanitize(obj):
    """A JSON-safe copy of obj: non-finite floats become null, unknown types strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def emit(fd, obj, indent):
    """Write obj as one JSON document (and a newline) to file descriptor fd."""
    data = (json.dumps(sanitize(obj), indent=indent, allow_nan=False) + "\n").encode()
    while data:
        n = os.write(fd, data)
        data = data[n:]
