"""Starts tests/gpu/client.py as a container would be started from one Allocate answer
(tests/gpu/check.sh writes them with the gpu_allocate test): the answer's env only, its mounts
bound in a private mount namespace (the pipe directory, and the shared shm over /dev/shm),
optionally as another Linux user. Usage: run_client.py ALLOC.json NAME [UID]."""
import json
import os
import subprocess
import sys

alloc_file, name = sys.argv[1], sys.argv[2]
uid = sys.argv[3] if len(sys.argv) > 3 else None
alloc = next(a for a in json.load(open(alloc_file)) if a["name"] == name)
binds = "; ".join(
    f"mkdir -p {m['containerPath']} && mount --bind {m['hostPath']} {m['containerPath']}"
    for m in alloc["mounts"]
)
client = os.path.join(os.path.dirname(os.path.abspath(__file__)), "client.py")
run = f"{sys.executable} {client} {name}"
if uid:
    run = f"setpriv --reuid={uid} --regid={uid} --clear-groups {run}"
env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME", "LD_LIBRARY_PATH")}
env.update(alloc["envs"])
if uid:
    env["HOME"] = "/tmp"
env.update({k: v for k, v in os.environ.items() if k.startswith("PROBE_")})
if os.environ.get("TESSERA_CHECK_MOUNTS"):
    script = f"mount --make-rprivate / ; {binds}; exec {run}"
    sys.exit(subprocess.call(["unshare", "-m", "sh", "-c", script], env=env))
# No mount namespaces: the pipe has the same path here, and /dev/shm is the daemon's too.
sys.exit(subprocess.call(["sh", "-c", f"exec {run}"], env=env))
