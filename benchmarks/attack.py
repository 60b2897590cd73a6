"""Attack suite for ``digitnet serve`` (issue 15): run the red team's attacks, print a table.

Starts a real ``digitnet serve`` on a free port of 127.0.0.1 (loopback only, never another
address) with a fresh model folder, then runs, each bounded in count and time:

1. **bombs**: concurrent ``POST /api/predict`` of an 8800x8800 PNG (300 KB, 310 MB decoded);
   every one must be refused with a 4xx in under 1 s, and the server's memory must not grow
   by more than 500 MB (its resident size is sampled every 10 ms; MNIST alone takes ~0.5 GB);
2. **load**: with training running, idle connections (some silent, some with half-sent
   headers or bodies, reopened when the server closes them) and maximal descent requests
   (the longest formula for the most steps the server accepts, each client repeating) held
   open, a client predicts every 50 ms: its p99 latency must stay under 200 ms and training
   above half the rate it had alone;
3. **crafted model files** (a valid digest, odd metadata) loaded through ``/api/models/load``,
   **random JSON bodies** to every POST endpoint, and a **start/pause/reset race**: no answer
   may be non-JSON or a 5xx, and the server's log must hold no traceback.

    python benchmarks/attack.py --quick            # a small run that shows it works (~1 min)
    python benchmarks/attack.py                    # the full targets: run on an idle machine
    python benchmarks/attack.py --only load --seconds 10   # one attack (bombs, load, files)

Run from the repository root with ``PYTHONPATH=src`` (or digitnet installed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def png_bomb(width: int = 8800, height: int = 8800) -> bytes:
    """A ~300 KB PNG declaring width x height RGBA pixels (repeated, fully flushed deflate blocks)."""
    rows = 100
    block = bytes(1 + 4 * width) * rows
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    adler = 1
    for _ in range(height // rows):
        adler = zlib.adler32(block, adler)
    body = b"\x78\xda" + piece * (height // rows) + end + struct.pack(">I", adler)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


class Server:
    """``digitnet serve`` in a child process, its output in a file, its memory sampled."""

    def __init__(self, data_dir: str | None):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="digitnet-attack-"))
        (self.dir / "models").mkdir()
        self.log = open(self.dir / "server.log", "wb")
        cmd = [sys.executable, "-m", "digitnet", "serve", "--host", HOST, "--port", str(self.port),
               "--model-dir", str(self.dir / "models")]
        if data_dir:
            cmd += ["--data-dir", data_dir]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.base = f"http://{HOST}:{self.port}"

    def wait_ready(self, seconds: float = 120) -> None:
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"digitnet serve exited with {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                if httpx.get(self.base + "/api/info", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit("digitnet serve did not start in time")

    def rss_mb(self) -> float:
        try:
            for line in open(f"/proc/{self.proc.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def output(self) -> str:
        self.log.flush()
        return (self.dir / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class Sampler(threading.Thread):
    """The server's resident memory every 10 ms, while running."""

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server, self.peak, self.stop_flag = server, 0.0, threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            self.peak = max(self.peak, self.server.rss_mb())
            time.sleep(0.01)

    def stop(self) -> float:
        self.stop_flag.set()
        self.join(5)
        return self.peak


class Results:
    def __init__(self):
        self.rows: list[tuple[str, str, str, bool]] = []
        self.non_json = 0
        self.server_errors = 0
        self.answers = 0

    def row(self, name: str, measured: str, target: str, ok: bool) -> None:
        self.rows.append((name, measured, target, ok))
        print(f"  {name}: {measured}  ({'ok' if ok else 'MISSED'}: {target})", flush=True)

    def check(self, r) -> None:
        """Count an answer that is not JSON (503 from the server's own limits included) or a 5xx."""
        self.answers += 1
        if not r.headers.get("content-type", "").startswith(("application/json", "text/event-stream")):
            self.non_json += 1
        if r.status_code >= 500 and r.status_code != 503:
            self.server_errors += 1

    def table(self) -> str:
        w = max(len(r[0]) for r in self.rows)
        m = max(len(r[1]) for r in self.rows)
        lines = [f"{'attack'.ljust(w)}  {'measured'.ljust(m)}  target  result", "-" * (w + m + 30)]
        lines += [f"{n.ljust(w)}  {v.ljust(m)}  {t}  {'ok' if ok else 'MISSED'}" for n, v, t, ok in self.rows]
        return "\n".join(lines)


# --- 1. bombs ---------------------------------------------------------------------------------
def attack_bombs(server: Server, res: Results, n: int) -> None:
    import httpx

    bomb = png_bomb()
    base_rss = server.rss_mb()
    sampler = Sampler(server)
    sampler.start()

    def one(_):
        with httpx.Client(timeout=30) as c:
            t = time.perf_counter()
            r = c.post(server.base + "/api/predict", content=bomb, headers={"Content-Type": "image/png"})
            res.check(r)
            return r.status_code, time.perf_counter() - t

    with ThreadPoolExecutor(n) as pool:
        got = list(pool.map(one, range(n)))
    time.sleep(0.2)
    peak = sampler.stop()
    refused = sum(1 for s, _ in got if 400 <= s < 500)
    slowest = max(t for _, t in got)
    res.row(f"{n} concurrent 8800x8800 PNG bombs", f"{refused}/{n} refused (4xx), slowest {slowest:.2f} s",
            "all 4xx in < 1 s", refused == n and slowest < 1.0)
    res.row("server memory during the bombs", f"+{peak - base_rss:.0f} MB (from {base_rss:.0f} MB to {peak:.0f} MB)",
            "< +500 MB", peak - base_rss < 500)


# --- 2. load: idle connections, descent, predictions, training -----------------------------
def training_rate(client, base: str, seconds: float) -> float:
    b0 = client.get(base + "/api/train/status").json()["batch"]
    t0 = time.perf_counter()
    time.sleep(seconds)
    b1 = client.get(base + "/api/train/status").json()["batch"]
    return (b1 - b0) / (time.perf_counter() - t0)


class IdleConnections(threading.Thread):
    """Keep ``n`` connections open: silent ones, half-sent headers, half-sent bodies."""

    def __init__(self, port: int, n: int, until: float):
        super().__init__(daemon=True)
        self.port, self.n, self.until = port, n, until
        self.socks: list[socket.socket] = []
        self.reopened = 0
        self.open_now = 0

    def _open(self, i: int) -> socket.socket | None:
        try:
            s = socket.create_connection((HOST, self.port), timeout=2)
        except OSError:
            return None
        kind = i % 3
        try:
            if kind == 1:  # slowloris: headers that never end
                s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
            elif kind == 2:  # a predict body that never finishes
                s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100000\r\n\r\n{\"width\": 28, ")
        except OSError:
            pass
        s.setblocking(False)
        return s

    def run(self):
        self.socks = [self._open(i) for i in range(self.n)]
        while time.monotonic() < self.until:
            alive = 0
            for i, s in enumerate(self.socks):
                if s is not None:
                    try:
                        # poll, not select: select() refuses descriptors above 1023, and
                        # a thousand idle connections need more
                        poller = select.poll()
                        poller.register(s, select.POLLIN)
                        if not poller.poll(0):
                            alive += 1
                            continue
                        if s.recv(65536):
                            alive += 1
                            continue
                    except OSError:
                        pass
                    s.close()
                self.socks[i] = self._open(i)
                self.reopened += 1
            self.open_now = alive
            time.sleep(0.5)
        for s in self.socks:
            if s is not None:
                s.close()


def maximal_descent() -> dict:
    from digitnet.playground import parse
    from digitnet.web.requests import DESCENT_BUDGET, LIMITS

    formula = "+".join(f"{(i % 9) + 1}x^2" for i in range(300))[:999]
    formula = formula[: formula.rfind("+")]
    size = max(len(formula), len(str(parse(formula))))
    steps = min(LIMITS["descent_steps"][1], DESCENT_BUDGET // size)
    return {"formula": formula, "start": [1.0], "steps": steps, "eta": 1e-6}


def drawing_body(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.zeros((112, 112), dtype=np.uint8)
    img[20:92, 50:62] = 255
    img = np.clip(img.astype(int) + rng.integers(0, 20, img.shape), 0, 255)
    return json.dumps({"width": 112, "height": 112, "pixels": img.ravel().tolist()}).encode()


def predict_while_training(c, base: str, res: Results, seconds: float) -> tuple[list[float], list[int], float]:
    """Predict every 50 ms for ``seconds``: (latencies, statuses, training mini-batches/s meanwhile)."""
    import httpx

    body = drawing_body()
    lat, statuses = [], []
    b0 = c.get(base + "/api/train/status").json()["batch"]
    t0 = time.perf_counter()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        try:
            r = c.post(base + "/api/predict", content=body, headers={"Content-Type": "application/json"})
            statuses.append(r.status_code)
            res.check(r)
        except httpx.HTTPError:
            statuses.append(0)
        lat.append(time.perf_counter() - t)
        time.sleep(0.05)
    b1 = c.get(base + "/api/train/status").json()["batch"]
    return lat, statuses, (b1 - b0) / (time.perf_counter() - t0)


def attack_load(server: Server, res: Results, n_idle: int, n_descent: int, seconds: float) -> None:
    import httpx

    c = httpx.Client(timeout=30)
    base = server.base
    r = c.post(base + "/api/train/config", json={"preset": "video", "epochs": 200})
    r = c.post(base + "/api/train/start", json={})
    assert r.status_code == 200, r.text
    time.sleep(1.0)
    alone = training_rate(c, base, 3.0)
    # "Normal" is the page in use: someone drawing (a prediction every 50 ms) while it trains.
    lat0, _, normal = predict_while_training(c, base, res, seconds / 2)
    res.row("training alone / while someone draws (normal)",
            f"{alone:.0f} / {normal:.0f} mini-batches/s; predict p99 {np.percentile(lat0, 99) * 1000:.0f} ms",
            "(reference)", normal > 0)

    until = time.monotonic() + seconds + 5
    idle = IdleConnections(server.port, n_idle, until)
    idle.start()
    time.sleep(2.0)  # let them connect
    stop = threading.Event()
    descent = maximal_descent()
    counts = {"descent_200": 0, "descent_503": 0, "descent_other": 0}

    def descender():
        with httpx.Client(timeout=60) as dc:
            while not stop.is_set():
                try:
                    r = dc.post(base + "/api/descent", json=descent)
                except httpx.HTTPError:
                    counts["descent_other"] += 1
                    continue
                res.check(r)
                key = {200: "descent_200", 503: "descent_503"}.get(r.status_code, "descent_other")
                counts[key] += 1
                if r.status_code == 503:
                    time.sleep(float(r.headers.get("retry-after", "1")) * random.random())

    c.post(base + "/api/descent", json={"formula": "x^2", "start": [1]})  # starts the playground's worker
    threads = [threading.Thread(target=descender, daemon=True) for _ in range(n_descent)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    lat, statuses, under_load = predict_while_training(c, base, res, seconds)
    stop.set()
    for t in threads:
        t.join(90)
    p99 = float(np.percentile(lat, 99)) * 1000 if lat else float("nan")
    ok = sum(1 for s in statuses if s == 200)
    res.row(f"predict p99 with {n_idle} idle connections and {n_descent} maximal descents",
            f"{p99:.0f} ms over {len(lat)} predictions ({ok} ok; idle kept open {idle.open_now}, "
            f"reopened {idle.reopened})", "< 200 ms, all ok", p99 < 200 and ok == len(lat))
    res.row("training rate under that load", f"{under_load:.0f} mini-batches/s ({under_load / normal:.0%} of normal, "
            f"{under_load / alone:.0%} of alone)", "> 50% of normal", under_load > normal / 2)
    res.row("maximal descent requests", f"{counts['descent_200']} answered, {counts['descent_503']} told 503 busy, "
            f"{counts['descent_other']} other; {descent['steps']} steps of a {len(descent['formula'])}-character "
            "formula each", "(bounded)", counts["descent_other"] == 0)
    c.post(base + "/api/train/pause", json={})
    idle.join(15)
    c.close()


# --- 3. crafted model files, random JSON bodies, start/pause/reset race -------------------
def crafted_files(model_dir: Path) -> list[str]:
    from safetensors import safe_open
    from safetensors.numpy import save

    from digitnet.io.model_io import _digest, save_model
    from digitnet.nn.network import Network

    good = save_model(model_dir / "good.safetensors", Network.create((784, 16, 10), seed=0))
    with safe_open(str(good), framework="numpy") as f:
        meta0, tensors0 = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    deep = "[" * 100_000 + "]" * 100_000
    record = {"epoch": 1, "cost": 0.1, "train_accuracy": 0.9, "test_accuracy": 0.9, "validation_accuracy": None,
              "seconds": 1.0, "eta": 3.0}
    cases = {
        "history-list": {"history": "[]"}, "kinds-5": {"kinds": "5"}, "train-list": {"train": "[1, 2]"},
        "record-unknown-key": {"history": json.dumps({"epochs": [{**record, "evil": 1}]})},
        "batch-cost-0d": {"tensor": np.array(1.0, np.float32)}, "network-deep": {"network": deep},
        "history-deep": {"history": deep}, "classes-numbers": {"classes": "[1, 2, 3]"},
        "train-eta-text": {"train": '{"eta": "fast"}'}, "epoch-text": {"epoch": "four"},
        "huge-int": {"train": '{"epochs": ' + "9" * 4000 + "}"}, "nan": {"train": '{"eta": NaN}'},
        "network-null": {"network": "null"}, "layers-text": {"network": '{"layers": "784,10"}'},
    }
    names = []
    for name, change in cases.items():
        meta, tensors = dict(meta0), dict(tensors0)
        if "tensor" in change:
            tensors["history.batch_cost"] = change.pop("tensor")
        meta.update(change)
        meta["sha256"] = _digest(tensors)
        (model_dir / f"crafted-{name}.safetensors").write_bytes(save(tensors, metadata=meta))
        names.append(f"crafted-{name}")
    (model_dir / "crafted-truncated.safetensors").write_bytes(good.read_bytes()[:300])
    names.append("crafted-truncated")
    return names


def attack_files_bodies_race(server: Server, res: Results, n_bodies: int, n_race: int) -> None:
    import httpx

    base = server.base
    before = (res.non_json, res.server_errors)
    with httpx.Client(timeout=30) as c:
        c.post(base + "/api/train/pause", json={})
        names = crafted_files(server.dir / "models")
        refused = 0
        for name in names:
            r = c.post(base + "/api/models/load", json={"name": name})
            res.check(r)
            refused += 400 <= r.status_code < 500
        res.row(f"{len(names)} crafted model files loaded", f"{refused} refused with a JSON 4xx",
                "all refused cleanly", refused == len(names) and (res.non_json, res.server_errors) == before)

    rng = random.Random(0)
    atoms = [0, -1, 1, 0.5, 1e308, 10**400, -(10**30), "", "x", "3/2x^2 + y^2", None, True, False, [], {},
             [1, 2], [1e6] * 4, [[[]]], "a" * 100, {"a": {"b": [1]}}]
    fields = ["formula", "start", "eta", "steps", "momentum", "view", "name", "overwrite", "label", "pixels",
              "width", "height", "test_index", "hidden", "preset", "activation", "cost", "optimizer", "epochs",
              "batch_size", "seed", "train_size", "lmbda", "until", "evil"]
    paths = ["/api/predict", "/api/descent", "/api/drawings", "/api/models/load", "/api/models/save",
             "/api/train/config", "/api/train/step", "/api/train/pause"]

    def body() -> bytes:
        kind = rng.random()
        if kind < 0.05:
            n = rng.choice([10, 1000, 100_000])
            return ("[" * n + "]" * n).encode()
        obj = {rng.choice(fields): rng.choice(atoms) for _ in range(rng.randint(0, 5))}
        text = json.dumps(obj)
        if kind < 0.15:
            text = text[: rng.randint(0, len(text))]
        if kind > 0.95:
            text = text.replace("1", "1" + "0" * rng.choice([20, 400, 5000]), 1)
        return text.encode()

    bodies = [(rng.choice(paths), body()) for _ in range(n_bodies)]
    before = (res.non_json, res.server_errors)

    def send(job):
        path, b = job
        with httpx.Client(timeout=30) as c:
            r = c.post(base + path, content=b, headers={"Content-Type": "application/json"})
            res.check(r)
            return r.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, bodies))
    bad = (res.non_json - before[0], res.server_errors - before[1])
    res.row(f"{n_bodies} random JSON bodies", f"{bad[0]} non-JSON, {bad[1]} 5xx "
            f"({sum(s == 200 for s in statuses)} accepted)", "0 and 0", bad == (0, 0))

    with httpx.Client(timeout=30) as c:
        c.post(base + "/api/train/config", json={"preset": "video", "epochs": 200, "train_size": 2000})
    before = (res.non_json, res.server_errors)
    race_paths = ["/api/train/start", "/api/train/pause", "/api/train/reset", "/api/train/step"]

    def racer(k):
        with httpx.Client(timeout=60) as c:
            out = []
            for i in range(n_race // 8):
                r = c.post(base + race_paths[(k + i) % 4], json={})
                res.check(r)
                out.append(r.status_code)
            return out

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for out in pool.map(racer, range(8)) for s in out]
    bad = (res.non_json - before[0], res.server_errors - before[1])
    res.row(f"start/pause/reset race ({len(statuses)} requests)", f"{bad[0]} non-JSON, {bad[1]} 5xx",
            "0 and 0", bad == (0, 0))
    with httpx.Client(timeout=30) as c:
        c.post(base + "/api/train/pause", json={})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small run that shows the suite works")
    ap.add_argument("--data-dir", help="MNIST folder for the server (default: the shipped copy)")
    ap.add_argument("--bombs", type=int, default=16)
    ap.add_argument("--idle", type=int, default=1000, help="idle and half-sent connections held open")
    ap.add_argument("--descents", type=int, default=40, help="clients repeating maximal descent requests")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the load measurement")
    ap.add_argument("--bodies", type=int, default=10_000, help="random JSON bodies")
    ap.add_argument("--race", type=int, default=160, help="start/pause/reset/step requests in the race")
    ap.add_argument("--only", choices=["bombs", "load", "files"], action="append",
                    help="run only this attack (repeatable): bombs, load, or files (crafted files, bodies, race)")
    args = ap.parse_args()
    if args.quick:
        args.bombs, args.idle, args.descents, args.seconds, args.bodies, args.race = 4, 100, 8, 5.0, 300, 40
    res = Results()
    server = Server(args.data_dir)
    try:
        server.wait_ready()
        print(f"digitnet serve on {server.base} (pid {server.proc.pid}, {server.rss_mb():.0f} MB)", flush=True)
        only = set(args.only or ["bombs", "load", "files"])
        if "bombs" in only:
            attack_bombs(server, res, args.bombs)
        if "load" in only:
            attack_load(server, res, args.idle, args.descents, args.seconds)
        if "files" in only:
            attack_files_bodies_race(server, res, args.bodies, args.race)
        time.sleep(0.5)
        log = server.output()
        res.row("answers that were not JSON / 5xx, all attacks",
                f"{res.non_json} / {res.server_errors} of {res.answers}", "0 / 0",
                res.non_json == 0 and res.server_errors == 0)
        res.row("tracebacks in the server log", f"{log.count('Traceback')} ({len(log):,} bytes of log)", "0",
                "Traceback" not in log)
    finally:
        server.stop()
    print()
    print(res.table())
    return 0 if all(ok for *_, ok in res.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
