#!/usr/bin/env python3
"""Pack a root filesystem folder into a single-layer docker-archive tarball
(the `docker save` layout that `ctr images import` reads):

    manifest.json
    <sha256 of config>.json
    <sha256 of layer>/layer.tar

usage: write-image.py ROOTFS OUT.tar NAME:TAG

Symlinks, hard links, modes, owners and device nodes are kept as they are in
ROOTFS (walked without following links); sockets are skipped.
"""
import hashlib
import io
import json
import os
import sys
import tarfile

ENTRYPOINT = ["/usr/local/bin/zk-start"]
ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ZOOCFGDIR=/data/conf",
    "LANG=C.UTF-8",
]
EPOCH = "1970-01-01T00:00:00Z"


def write_layer(rootfs, path):
    """Write ROOTFS as an uncompressed tar at PATH; return its sha256 hex."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                arcname = os.path.relpath(full, rootfs)
                info = tar.gettarinfo(full, arcname)
                if info is None:  # a socket
                    continue
                info.uname = info.gname = ""
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    rootfs, out, ref = sys.argv[1:]
    layer_path = out + ".layer.tmp"
    try:
        layer_hex = write_layer(rootfs, layer_path)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": EPOCH,
            "config": {
                "Entrypoint": ENTRYPOINT,
                "Env": ENV,
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_hex]},
            "history": [{"created": EPOCH, "created_by": "tests/images/zookeeper/build.sh"}],
        }
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        layer_name = layer_hex + "/layer.tar"
        manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": [layer_name]}]
        tmp_out = out + ".tmp"
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(layer_hex)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
            info = tarfile.TarInfo(layer_name)
            info.size = os.path.getsize(layer_path)
            info.mode = 0o644
            with open(layer_path, "rb") as f:
                tar.addfile(info, f)
            add_bytes(tar, config_name, config_bytes)
            add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        os.replace(tmp_out, out)
    finally:
        if os.path.exists(layer_path):
            os.unlink(layer_path)
    print(f"{out}: {ref} config=sha256:{config_name[:-5]} layer=sha256:{layer_hex}")


if __name__ == "__main__":
    main()
