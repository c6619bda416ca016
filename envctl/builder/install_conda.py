"""Install locked conda packages from a folder into a prefix, offline, with py-rattler.

Runs inside the builder stage of an image: ``python install_conda.py PKGS.json FOLDER PREFIX``.
PKGS.json lists {filename, sha256, md5, url} from the lockfile.  Every archive's
sha256 is checked against the lock (rattler does not check file:// sources).
"""

import asyncio
import json
import sys
import time
from pathlib import Path

import rattler
from rattler import RepoDataRecord


async def main(listing: Path, folder: Path, prefix: Path) -> None:
    records = []
    for entry in json.loads(listing.read_text()):
        rec = await RepoDataRecord.from_package_archive(folder / entry["filename"])
        if rec.sha256.hex() != entry["sha256"]:
            sys.exit(f"sha256 mismatch for {entry['filename']}: the lock says {entry['sha256']}")
        rec.md5 = bytes.fromhex(entry["md5"])
        rec.channel = entry["url"].rsplit("/", 2)[0] + "/"
        records.append(rec)
    await rattler.install(records, target_prefix=prefix, cache_dir=Path("/tmp/envctl-rattler-cache"),
                          show_progress=False)
    print(f"installed {len(records)} conda packages into {prefix}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
    time.sleep(0.05)  # let rattler's runtime threads wind down before the interpreter exits
