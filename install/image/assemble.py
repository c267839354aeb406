#!/usr/bin/env python3
"""Assemble Tessera's runtime image without a registry or a container builder.

The same runtime as the Containerfile's final stage: the `tessera` binary, the glibc and
libgcc it links (NVML is loaded with dlopen, so a static musl binary will not do), a non-root
user 65532 and a writable /tmp, in one layer. Written as a docker-archive tarball (the
`docker save` layout), which `ctr images import`, `docker load` and `podman load` accept.

usage: assemble.py --binary PATH --tag NAME:TAG --out FILE.tar
                   [--commit SHA] [--containerd-socket SOCK [--namespace k8s.io]]

The libraries are the build machine's (resolved with ldd): build on the distribution the
Containerfile's runtime uses (Debian 12) so both images run the same code.
"""
import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = "root:x:0:\nnonroot:x:65532:\n"
BINARY_PATH = "usr/local/bin/tessera"


def linked_libraries(binary):
    """Absolute paths of the shared objects `binary` loads, the dynamic loader included."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if out.returncode != 0:
        text = (out.stdout + out.stderr).strip()
        if "not a dynamic executable" in text:
            return []
        sys.exit(f"assemble: ldd {binary} failed: {text}")
    libs = []
    for line in out.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            sys.exit(f"assemble: {binary} needs a library this machine lacks: {line}")
        m = re.match(r"\S+ => (/\S+) \(0x[0-9a-f]+\)$", line) or re.match(r"(/\S+) \(0x[0-9a-f]+\)$", line)
        if m:
            libs.append(m.group(1))
    return libs


def layer(binary):
    """The layer tarball's bytes: directories first, every entry owned by root, mtime 0."""
    files = [(BINARY_PATH, open(binary, "rb").read(), 0o755)]
    for lib in linked_libraries(binary):
        # Stored under the name the loader asks for, with the content of what it resolves to.
        files.append((lib.lstrip("/"), open(os.path.realpath(lib), "rb").read(), 0o755))
    files += [("etc/passwd", PASSWD.encode(), 0o644), ("etc/group", GROUP.encode(), 0o644)]
    dirs = {"tmp": 0o1777, "home/nonroot": 0o700}
    for path, _, _ in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.setdefault("/".join(parts[:i]), 0o755)
    for d in list(dirs):
        parts = d.split("/")
        for i in range(1, len(parts)):
            dirs.setdefault("/".join(parts[:i]), 0o755)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, dirs[d], 0
            if d == "home/nonroot":
                info.uid = info.gid = 65532
            tar.addfile(info)
        for path, data, mode in sorted(files):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def archive(binary, tag, commit):
    """The docker-archive tarball's bytes."""
    layer_bytes = layer(binary)
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    labels = {"org.opencontainers.image.title": "tessera"}
    if commit:
        labels["org.opencontainers.image.revision"] = commit
    config = {
        "architecture": "amd64" if os.uname().machine == "x86_64" else "arm64",
        "os": "linux",
        "config": {
            "User": "65532:65532",
            "Entrypoint": ["/" + BINARY_PATH],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created_by": "install/image/assemble.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{diff_id}/layer.tar"]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [
            (f"{diff_id}/layer.tar", layer_bytes),
            (config_name, config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", required=True, help="the tessera binary (cargo build --release)")
    p.add_argument("--tag", required=True, help="image reference, e.g. local/tessera:dev")
    p.add_argument("--out", required=True, help="docker-archive tarball to write")
    p.add_argument("--commit", default="", help="commit recorded in the image label")
    p.add_argument("--containerd-socket", help="also import into this containerd")
    p.add_argument("--namespace", default="k8s.io", help="containerd namespace (the kubelet's)")
    a = p.parse_args()
    if not os.access(a.binary, os.X_OK):
        sys.exit(f"assemble: --binary {a.binary} is not an executable file")
    if ":" not in a.tag.rsplit("/", 1)[-1]:
        sys.exit(f"assemble: --tag {a.tag} has no :TAG")
    data = archive(a.binary, a.tag, a.commit)
    with open(a.out, "wb") as f:
        f.write(data)
    print(f"wrote {a.out} ({len(data) >> 20} MiB) as {a.tag}")
    if a.containerd_socket:
        cmd = ["ctr", "--address", a.containerd_socket, "-n", a.namespace, "images", "import", a.out]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"assemble: {' '.join(cmd)} failed: {done.stderr.strip()}")
        print(f"imported {a.tag} into containerd at {a.containerd_socket} ({a.namespace})")


if __name__ == "__main__":
    main()
