#!/usr/bin/env bash
# GPU check for MPS isolation (issue 17), on a machine with an NVIDIA GPU, run as root:
# the real `tessera mps-daemon`, the device plugin's Allocate on the real NVML (the gpu_allocate
# test), and CUDA clients (PyTorch) started with exactly Allocate's env and mounts. Prints, per
# client, the memory it could take and its bf16 matmul throughput: alone, two shares at once of
# different users, and the daemon's restore of the compute mode on SIGTERM.
#
#   tests/gpu/check.sh TESSERA_BINARY GPU_ALLOCATE_TEST_BINARY [OUT_DIR]
#
# Build both here with: cargo build --release -p tessera &&
#   cargo test --release -p tessera-tests --test gpu_allocate --no-run
set -uo pipefail
tessera=$(realpath "$1"); alloc_test=$(realpath "$2"); out=${3:-$(mktemp -d)}
here=$(cd "$(dirname "$0")" && pwd)
root=/run/tessera-check/mps
mkdir -p "$root/shm" "$out"
command -v nvidia-cuda-mps-control >/dev/null || export PATH=$PATH:/usr/local/nvidia/bin
nvidia-smi --query-gpu=index,uuid,name,memory.total,compute_mode,driver_version --format=csv
# Containers get <root>/shm as /dev/shm; where this machine allows no mount namespace, the
# daemon and the clients share the host's /dev/shm instead, which is the same arrangement.
if unshare -m sh -c "mount --make-rprivate / && mount --bind $root/shm /dev/shm" 2>/dev/null; then
  ns="unshare -m sh -c"; export TESSERA_CHECK_MOUNTS=1
  shm="mount --make-rprivate /; mount --bind $root/shm /dev/shm;"
else
  ns="sh -c"; shm=""; echo "(no mount namespaces here: clients and daemon share /dev/shm)"
fi

echo "== can a process without CAP_SYS_ADMIN set the compute mode?"
setpriv --bounding-set=-all --inh-caps=-all nvidia-smi -i 0 -c EXCLUSIVE_PROCESS 2>&1 | tail -1
nvidia-smi -i 0 -c DEFAULT >/dev/null 2>&1

echo "== the whole GPU without MPS, for reference"
PROBE_CAP_GIB=4 python3 "$here/client.py" no-mps

echo "== tessera mps-daemon (its /dev/shm is <root>/shm, as in its DaemonSet)"
$ns "$shm exec $tessera mps-daemon --mps-root $root --metrics-listen 127.0.0.1:9403" \
  >"$out/mps-daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do [ -e "$root/status.json" ] && break; sleep 0.2; done
cat "$root/status.json"; echo
python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9403/readyz').read().decode())"
nvidia-smi --query-gpu=compute_mode --format=csv,noheader

echo "== Allocate on the real GPU"
TESSERA_GPU_CHECK_OUT=$out/alloc.json TESSERA_MPS_ROOT=$root "$alloc_test" --ignored --nocapture \
  >"$out/allocate.log" 2>&1 || { tail -40 "$out/allocate.log"; exit 1; }
python3 -c "import json,sys; [print(a['name'], a['envs'], a['mounts']) for a in json.load(open(sys.argv[1]))]" "$out/alloc.json"

echo "== one client at a time"
python3 "$here/run_client.py" "$out/alloc.json" share-8g-25
python3 "$here/run_client.py" "$out/alloc.json" share-16g-50
echo "== two clients at once, root and UID 1000"
python3 "$here/run_client.py" "$out/alloc.json" share-8g-25 &
a=$!
python3 "$here/run_client.py" "$out/alloc.json" share-16g-50 1000 &
b=$!
wait $a $b
echo "== three clients at once (85% of the GPU), three users"
python3 "$here/run_client.py" "$out/alloc.json" share-8g-25 &
a=$!
python3 "$here/run_client.py" "$out/alloc.json" share-16g-50 1000 &
b=$!
python3 "$here/run_client.py" "$out/alloc.json" share-4g-10 2000 &
c=$!
wait $a $b $c
echo "== MPS server list"
echo get_server_list | CUDA_MPS_PIPE_DIRECTORY=$root/pipe nvidia-cuda-mps-control
echo "== a whole-GPU container goes through MPS too (100%)"
PROBE_CAP_GIB=150 python3 "$here/run_client.py" "$out/alloc.json" whole

echo "== the control daemon killed (SIGKILL): status withdrawn, and back after the restart"
python3 - "$root" <<'PY'
import os, signal, sys, time
root = sys.argv[1]
status = os.path.join(root, "status.json")
def control_pid():
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"nvidia-cuda-mps-control") and b"-f" in argv:
            return int(p)
pid = control_pid()
t0 = time.time()
os.kill(pid, signal.SIGKILL)
while os.path.exists(status):
    time.sleep(0.01)
gone = time.time() - t0
while not os.path.exists(status):
    time.sleep(0.01)
print(f"status withdrawn after {gone*1000:.0f} ms; back (new daemon healthy) after {time.time()-t0:.2f} s")
PY
python3 "$here/run_client.py" "$out/alloc.json" share-4g-10

echo "== SIGTERM: status withdrawn, compute mode restored"
kill -TERM $daemon; wait $daemon
ls "$root"; nvidia-smi --query-gpu=compute_mode --format=csv,noheader
tail -20 "$out/mps-daemon.log"
