"""Seal one layer of an environment: record what it wrote, then make its bytes reproducible.

Runs at the end of each RUN that writes the environment, inside the build, with the
base's python3 (standard library only)::

    python3 seal_layer.py PREFIX INDEX NAME EPOCH

Every file under PREFIX whose mtime is not EPOCH was written by this RUN (earlier
layers were sealed to exactly EPOCH).  Those files are listed with their sha256 in
``PREFIX/.envctl/layers/INDEX-NAME.json`` (symlinks with their target), then every
path this RUN touched, PREFIX's parent folders included, gets its mtime set to EPOCH.
Paths an earlier layer sealed are left alone: touching them would copy them up into
this layer.  With hash-based .pyc files (pip compiles under SOURCE_DATE_EPOCH) the
same lock and base then give byte-identical layers.  ``envctl verify`` recomputes
the hashes inside the image and names every changed, added or removed file.
"""

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

MANIFESTS = os.path.join(".envctl", "layers")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def written(prefix, epoch):
    """(relative path, entry) for every file or symlink this layer wrote; folders it touched."""
    files, folders = {}, []
    for root, dirs, names in os.walk(prefix):
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            st = os.lstat(path)
            if st.st_mtime == epoch:
                continue
            rel = os.path.relpath(path, prefix)
            if rel.startswith(MANIFESTS + os.sep):
                continue
            files[rel] = "link:" + os.readlink(path) if os.path.islink(path) else path
        if os.lstat(root).st_mtime != epoch:
            folders.append(root)
    # hashlib releases the GIL on large buffers: the layer's GBs are hashed on every core.
    regular = [rel for rel, value in files.items() if not value.startswith("link:")]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        files.update(zip(regular, pool.map(sha256_of, [files[rel] for rel in regular])))
    return files, folders


def main(argv):
    prefix, index, name, epoch = argv[0], int(argv[1]), argv[2], int(argv[3])
    files, folders = written(prefix, epoch)
    manifest_dir = os.path.join(prefix, MANIFESTS)
    os.makedirs(manifest_dir, exist_ok=True)
    manifest = os.path.join(manifest_dir, f"{index:02d}-{name}.json")
    with open(manifest, "w") as fh:
        json.dump({"layer": name, "index": index, "files": files}, fh, indent=0, sort_keys=True)
        fh.write("\n")
    # Children before parents: setting a file's time does not change its folder's.
    touched = [os.path.join(prefix, rel) for rel in files] + [manifest]
    touched += [manifest_dir, os.path.dirname(manifest_dir), prefix] + folders
    parent = os.path.dirname(os.path.abspath(prefix))
    while parent != os.path.dirname(parent):
        touched.append(parent)
        parent = os.path.dirname(parent)
    for path in touched:
        if os.lstat(path).st_mtime != epoch:
            os.utime(path, (epoch, epoch), follow_symlinks=False)
    print(f"sealed layer {index} {name}: {len(files)} files")


if __name__ == "__main__":
    main(sys.argv[1:])
