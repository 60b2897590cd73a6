"""Load test of ``digitnet serve``: predict requests from many clients while training runs.

Starts ``digitnet serve`` on a free port of 127.0.0.1 (never any other address), starts a
training job (the video preset) through the API, then sends ``--requests`` requests from
``--clients`` concurrent clients. Most are predicts of real MNIST test digits drawn at
112x112; the rest are bad on purpose: malformed JSON, wrong pixel counts, NaN and
out-of-range values, an unknown field, the wrong content type, and bodies over the size
cap. It reports throughput and the p50/p99 latency of the good predicts, counts the
answers by status, and checks that

* no request got a 5xx or no answer at all,
* every bad request got a 4xx with a JSON ``{"error": ...}`` message,
* every good request got 200 and a digit,
* training kept going (more mini-batches done after the load than before) and did not fail.

The load starts once training is doing mini-batches (it says how long the first one took
after the start request: the first training after installing compiles the compiled engine's
kernels first), so the latencies are those of predicts while a training runs; with
``--load-from-start`` it starts with the start request, and so meets the compiling too.
``--no-training`` measures the same without a training job (the idle server).

Each client starts at a random moment and waits about ``--interval`` seconds (0.5 to 1.5
times it, at random) between its requests; 0 sends them back to back, the harshest case.
Everything is bounded: at most ``--requests`` requests and ``--timeout`` seconds.

    python benchmarks/loadtest.py --requests 10000 --clients 50 --interval 0.5   # the defaults
    python benchmarks/loadtest.py --no-training                                  # the idle server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drawings(n: int, seed: int = 0) -> list[bytes]:
    """JSON bodies of MNIST test digits scaled to 112x112, light ink on black like the canvas."""
    from digitnet.data.datasets import load_mnist

    test = load_mnist().test
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(test), n, replace=False):
        big = np.kron(test.images[i], np.ones((4, 4), np.uint8))
        out.append(json.dumps({"width": 112, "height": 112, "pixels": big.ravel().tolist()}).encode())
    return out


BAD = [
    ("application/json", b"{not json"),
    ("application/json", json.dumps({"width": 28, "height": 28, "pixels": [0] * 10}).encode()),
    ("application/json", json.dumps({"width": 28, "height": 28, "pixels": ["NaN"] * 784}).encode()),
    ("application/json", json.dumps({"width": 5000, "height": 28, "pixels": [0] * 784}).encode()),
    ("application/json", json.dumps({"width": 28, "height": 28, "pixels": [0] * 784, "evil": 1}).encode()),
    ("application/json", b"[1, 2, 3]"),
    ("text/plain", b"draw me a seven"),
    ("application/json", b'{"width": 28, "height": 28, "pixels": [1e999]}'),
]
OVERSIZED = ("application/json", b'{"pixels": [' + b"0," * (1_500_000) + b"0]}")  # ~3 MB, over the 2 MiB cap


async def run(args) -> int:
    import httpx

    port = free_port()
    model_dir = tempfile.mkdtemp(prefix="digitnet-load-")
    server = subprocess.Popen(
        [sys.executable, "-m", "digitnet", "serve", "--port", str(port), "--model-dir", model_dir],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            waited = time.perf_counter()
            while True:  # wait for the server (at most --timeout seconds: a busy machine is slow)
                try:
                    if (await c.get("/api/info")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
                if time.perf_counter() - waited > args.timeout or server.poll() is not None:
                    print("the server did not start", file=sys.stderr)
                    return 2
            await c.post("/api/train/config", json={"preset": "video"})
            first_batch = started = None
            if not args.no_training:
                t_start = time.perf_counter()

                async def start_training():
                    nonlocal first_batch
                    # The first training after installing compiles the numba engine's kernels
                    # inside this request (Trainer construction): it can take tens of seconds.
                    start = await c.post("/api/train/start", json={}, timeout=args.timeout)
                    assert start.status_code == 200, start.text
                    while time.perf_counter() - t_start < args.timeout:
                        status = (await c.get("/api/train/status")).json()
                        if status["batch"] > 0 or status["status"] in ("failed", "diverged", "paused", "done"):
                            break
                        await asyncio.sleep(0.05)
                    first_batch = time.perf_counter() - t_start

                started = asyncio.create_task(start_training())
                if not args.load_from_start:  # the load starts once mini-batches are being done
                    await started
                    await asyncio.sleep(1.0)
            else:
                await asyncio.sleep(1.0)
            before = (await c.get("/api/train/status")).json()

            good_bodies = drawings(64)
            plan = []
            rng = random.Random(0)
            for i in range(args.requests):
                r = rng.random()
                if r < 0.85:
                    plan.append(("good", "application/json", good_bodies[i % len(good_bodies)]))
                elif r < 0.98:
                    plan.append(("bad", *BAD[i % len(BAD)]))
                else:
                    plan.append(("big", *OVERSIZED))
            latencies: list[float] = []
            statuses: Counter = Counter()
            problems: list[str] = []
            queue = iter(plan)
            deadline = time.perf_counter() + args.timeout

            limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as lc:

                async def client(k: int):
                    # Clients start at random moments and wait a random 0.5-1.5 x interval between
                    # requests, as people do; started in lockstep they would arrive in waves.
                    jitter = random.Random(k)
                    if args.interval:
                        await asyncio.sleep(jitter.uniform(0, args.interval))
                    for kind, ctype, body in queue:
                        if time.perf_counter() > deadline:
                            return
                        t = time.perf_counter()
                        try:
                            resp = await lc.post("/api/predict", content=body, headers={"content-type": ctype})
                        except httpx.HTTPError as e:
                            statuses["no answer"] += 1
                            problems.append(f"{kind}: {type(e).__name__}")
                            continue
                        dt = time.perf_counter() - t
                        statuses[resp.status_code] += 1
                        if resp.status_code >= 500:
                            problems.append(f"{kind}: {resp.status_code} {resp.text[:100]}")
                        elif kind == "good":
                            latencies.append(dt)
                            if resp.status_code != 200 or "digit" not in resp.json():
                                problems.append(f"good request answered {resp.status_code}: {resp.text[:100]}")
                        else:
                            ok = 400 <= resp.status_code < 500
                            try:
                                ok = ok and bool(resp.json().get("error"))
                            except ValueError:
                                ok = False
                            if not ok:
                                problems.append(f"{kind} request answered {resp.status_code}: {resp.text[:100]}")
                        if args.interval:
                            await asyncio.sleep(args.interval * jitter.uniform(0.5, 1.5))

                t0 = time.perf_counter()
                await asyncio.gather(*(client(k) for k in range(args.clients)))
                elapsed = time.perf_counter() - t0

            if started is not None:
                await started
            after = (await c.get("/api/train/status")).json()
            await c.post("/api/train/pause", json={})
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    sent = sum(statuses.values())
    lat = sorted(latencies)
    p = lambda q: 1000 * lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    print(f"requests sent: {sent} from {args.clients} clients (interval {args.interval} s) in {elapsed:.1f} s: "
          f"{sent / elapsed:.0f} requests/s")
    if first_batch is not None:
        when = "with the start request" if args.load_from_start else "1 s after it"
        print(f"training started: the first mini-batch {first_batch:.1f} s after the start request "
              f"(compiling the kernels, if not cached, comes first); the load began {when}")
    print(f"good predicts: {len(lat)}; latency p50 {p(0.50):.1f} ms, p99 {p(0.99):.1f} ms, max {p(1.0):.1f} ms")
    print("answers by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)))
    trained = after["batch"] - before["batch"]
    print(f"training during the load: {trained} mini-batches ({before['batch']} -> {after['batch']}), "
          f"status {after['status']!r}")
    if not args.no_training and (trained <= 0 or after["status"] in ("failed", "diverged")):
        problems.append("training made no progress or failed during the load")
    fives = sum(v for k, v in statuses.items() if isinstance(k, int) and k >= 500) + statuses["no answer"]
    print(f"5xx or no answer: {fives}; problems: {len(problems)}")
    for line in problems[:10]:
        print("  " + line)
    if args.p99_target and lat and p(0.99) > args.p99_target:
        print(f"p99 {p(0.99):.1f} ms is over the target of {args.p99_target} ms")
    return 1 if problems else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000, help="requests in all (default 10000)")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    ap.add_argument("--interval", type=float, default=0.5,
                    help="mean seconds each client waits between requests (default 0.5, jittered +-50%%)")
    ap.add_argument("--timeout", type=float, default=300, help="stop sending after this many seconds")
    ap.add_argument("--no-training", action="store_true", help="measure without a training job (a baseline)")
    ap.add_argument("--load-from-start", action="store_true",
                    help="start the load with the start request, not after the first mini-batch: the predicts "
                         "then also meet the first run's compiling of the kernels (when not cached)")
    ap.add_argument("--p99-target", type=float, default=50, help="report whether p99 latency (ms) is under this")
    return asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
