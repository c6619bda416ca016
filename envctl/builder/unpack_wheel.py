"""Check a wheel's sha256, then unpack it into a folder for PYTHONPATH (stdlib only).

Runs in the builder stage, which has Python but no pip: ``python3 unpack_wheel.py WHEEL SHA256 DEST``.
"""

import hashlib
import sys
import zipfile

wheel, expected, dest = sys.argv[1:4]
with open(wheel, "rb") as fh:
    actual = hashlib.sha256(fh.read()).hexdigest()
if actual != expected:
    sys.exit(f"sha256 mismatch for {wheel}: expected {expected}, got {actual}")
with zipfile.ZipFile(wheel) as zf:
    zf.extractall(dest)
