"""A CUDA client for tests/gpu/check.sh: how much GPU memory it can take (up to a cap) and its
bf16 matmul throughput, as one JSON line. It is started with exactly the env and mounts the
device plugin's Allocate returned, so it sees what a container would."""
import json
import os
import sys
import time

import torch

CAP_GIB = float(os.environ.get("PROBE_CAP_GIB", "24"))
SECONDS = float(os.environ.get("PROBE_SECONDS", "8"))
N = 8192


def reachable_gib():
    chunks, got = [], 0
    try:
        while got < CAP_GIB * 1024:
            chunks.append(torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda"))
            got += 256
    except RuntimeError:
        pass
    del chunks
    torch.cuda.empty_cache()
    return got / 1024


def tflops():
    a = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, iters = time.time(), 0
    while time.time() - start < SECONDS:
        for _ in range(10):
            a @ b
        torch.cuda.synchronize()
        iters += 10
    return 2 * N**3 * iters / (time.time() - start) / 1e12


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "client"
    mem = reachable_gib()
    rate = tflops()
    print(json.dumps({
        "client": name,
        "uid": os.getuid(),
        "memLimit": os.environ.get("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"),
        "threadPct": os.environ.get("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"),
        "pipe": os.environ.get("CUDA_MPS_PIPE_DIRECTORY"),
        # Under MPS the device reports the SMs the client may use.
        "sms": torch.cuda.get_device_properties(0).multi_processor_count,
        "reachableGiB": round(mem, 2),
        "tflops": round(rate, 1),
    }), flush=True)


main()
