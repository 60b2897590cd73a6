"""Sweeps (digitnet.tasks.sweep, ``digitnet sweep``): the spec, refused before anything runs;
results kept run by run, skipped when done, failures recorded; real Dask clusters, one of
whose workers is killed mid-sweep; every run equal to a plain ``digitnet train``."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from digitnet.cli import main
from digitnet.errors import ConfigError, DataError, FileWriteError
from digitnet.tasks import sweep as sw
from digitnet.tasks.run import run_training
from digitnet.training.settings import settings_from_dict

pytest.importorskip("distributed")

# Runs of a fraction of a second: 784-10, 500 images, one epoch, the NumPy engine, no deskewing.
TINY = {"layers": [784, 10], "train_size": 500, "epochs": 1, "engine": "numpy", "batch_size": 20, "preprocess": "none"}


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tiny_spec(tmp_path, grid='eta = [1.0, 3.0]', seeds="[0, 1]", **settings) -> Path:
    base = "\n".join(f"{k} = {json.dumps(v)}" for k, v in {**TINY, **settings}.items())
    return write_spec(tmp_path / "sweep.toml", f"seeds = {seeds}\n[base]\n{base}\n[grid]\n{grid}\n")


def lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def plain_train(config: dict, tmp_path: Path, mnist):
    """What `digitnet train` with these settings gives: run_training on MNIST, as the CLI calls it."""
    net, train = settings_from_dict(config)
    out = tmp_path / f"plain-{os.urandom(4).hex()}.safetensors"
    return sw.final_accuracies(run_training(net, train, out, mnist).history)


# --- the spec ------------------------------------------------------------------------


def test_spec_expands_grid_runs_and_seeds(tmp_path):
    spec = sw.load_spec(write_spec(tmp_path / "s.toml", """
seeds = [0, 1]
[base]
epochs = 2
[grid]
eta = [0.5, 1.0]
batch_size = [10, 20]
[[runs]]
name = "sigmoid"
[[runs]]
name = "relu"
activation = "relu"
init = "he"
"""))
    runs = spec.expand()
    assert len(runs) == 2 * 2 * 2 * 2
    assert runs[0].label == "sigmoid, eta=0.5, batch_size=10" and runs[0].seed == 0 and runs[1].seed == 1
    assert {r.config["activation"] for r in runs} == {"sigmoid", "relu"}
    assert all(r.config["epochs"] == 2 and r.config["seed"] == r.seed for r in runs)
    assert len({r.key for r in runs}) == 16 and len({r.config_key for r in runs}) == 8
    assert [r.key for r in spec.expand()] == [r.key for r in runs]  # stable
    # a whole number for a float setting is the same run (as --eta 1 is --eta 1.0)
    one = sw.spec_from_dict({"grid": {"eta": [1]}}).expand()[0]
    assert one.key == sw.spec_from_dict({"grid": {"eta": [1.0]}}).expand()[0].key and one.config["eta"] == 1.0
    # a setting given as the preset already has it is the same run
    same = sw.spec_from_dict({"base": {"epochs": 2, "activation": "sigmoid"}, "grid": {"eta": [0.5]}})
    assert same.expand()[0].key == sw.spec_from_dict({"base": {"epochs": 2}, "grid": {"eta": [0.5]}}).expand()[0].key


@pytest.mark.parametrize("text, message", [
    ("[base]\netaa = 1.0", r"^s.toml \[base\] etaa: Unknown setting: 'etaa' \(did you mean 'eta'\?\)"),
    ("[grid]\neta = [1.0, -2.0]", r"^s.toml \[grid\] eta = -2.0: eta must be > 0"),
    ("[grid]\nactivation = ['relu', 'gelu']", r"^s.toml \[grid\] activation = \"gelu\": activation must be one of"),
    ("[[runs]]\nname = 'a'\nbatch_size = 0", r"^s.toml \[\[runs\]\] #1 \(a\) batch_size: batch_size must be"),
    ("[grid]\neta = 0.5", r"^s.toml \[grid\] eta: give a list of the values to try"),
    ("seeds = [0, 0]", r"^s.toml seeds: each seed once"),
    ("seeds = [-1]", r"^s.toml seeds: give a list of whole numbers >= 0"),
    ("[base]\nseed = 3", r"^s.toml \[base\] seed: the seeds of a sweep are its seeds"),
    ("sedes = [0]", r"^s.toml: unknown key: 'sedes' \(did you mean 'seeds'\?\)"),
    ("[grid]\neta = [1.0, 1.0]", r"^s.toml: the configurations 'eta=1' and 'eta=1' are the same settings"),
    ("[base]\npreset = 'huge'", r"^s.toml \[base\] preset: Unknown preset 'huge'"),
    ("[base\neta = 1", r"^s.toml is not valid TOML"),
    ("[grid]\neta = [2024-01-01]", r"^s.toml \[grid\] eta: a date or time \(2024-01-01\)"),
    ("[[runs]]\nname = 'a'\neta = 12:30:00", r"^s.toml \[\[runs\]\] #1 \(a\) eta: a date or time"),
    ("[base]\neta = 2024-01-01T00:00:00", r"^s.toml \[base\] eta: a date or time"),
    ("", r"^s.toml: the spec sets nothing; give a \[base\] table"),
    ("[base]\nepochs = 1\nseeds = [0, 1]", r"^s.toml \[base\] seeds: .*move seeds = \[...\] above the first \[table\]"),
    ("[grid]\neta = [1.0, nan]", r"^s.toml \[grid\] eta = nan: "),
    ("[[runs]]\nname = 5", r"^s.toml \[\[runs\]\] #1 name: give one line of text.*this one is 5"),
    ("[[runs]]\ndescription = [1, 2]", r"^s.toml \[\[runs\]\] #1 description: give one line of text"),
    ('[[runs]]\nname = "a\\nb"', r"^s.toml \[\[runs\]\] #1 name: .*control character"),
    ("seeds = [0, 1, 2, 3]\n[grid]\neta = [" + ", ".join(str(1 + i) for i in range(100)) + "]\nbatch_size = ["
     + ", ".join(str(1 + i) for i in range(100)) + "]",
     r"^s.toml: 40,000 runs \(100 eta x 100 batch_size x 4 seeds\); a sweep runs at most 10,000. Narrow it"),
])
def test_bad_spec_is_refused_before_anything_runs(tmp_path, text, message):
    spec = write_spec(tmp_path / "s.toml", text)
    with pytest.raises(ConfigError, match=message):
        sw.run_sweep(spec, tmp_path / "out", client=object())  # no cluster is touched
    assert not (tmp_path / "out").exists()


def test_a_million_runs_are_refused_before_they_are_listed(tmp_path):
    import time

    grid = "\n".join(f"{k} = [{', '.join(str(i + 1) for i in range(100))}]" for k in ("epochs", "batch_size", "hidden"))
    spec = write_spec(tmp_path / "s.toml", f"[grid]\n{grid}")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"^s.toml: 1,000,000 runs"):
        sw.load_spec(spec)
    assert time.monotonic() - started < 1


def test_cli_names_the_spec_key_in_one_line(tmp_path):
    spec = write_spec(tmp_path / "sweep.toml", "[grid]\neta = [1.0, 0]\n")
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and r.output == "Error: sweep.toml [grid] eta = 0: eta must be > 0. Got 0 instead.\n"


def test_cli_errors_without_dask_unreachable_scheduler_and_unwritable_dir(tmp_path, monkeypatch):
    spec = tiny_spec(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(blocker / "out")])
    assert r.exit_code == 1 and r.output.startswith(f"Error: Cannot create the sweep's folder {blocker / 'out'}")
    assert r.output.endswith("Choose another --out.\n") and len(r.output.splitlines()) == 1
    monkeypatch.setattr(sw, "CONNECT_TIMEOUT", 1.0)
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"])
    assert r.exit_code == 1 and r.output.startswith("Error: --scheduler tcp://127.0.0.1:9: no Dask scheduler answered "
                                                    "there (")
    assert "leave out --scheduler" in r.output and len(r.output.splitlines()) == 1
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9",
                                  "--workers", "2"])
    assert r.exit_code == 1 and r.output == ("Error: --workers is the size of the local cluster; a cluster given by "
                                             "--scheduler has its own workers. Leave out one of them.\n")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and r.output == ("Error: Sweeps run on Dask, which is not installed: "
                                             "pip install 'digitnet[cluster]'\n")


@pytest.fixture
def not_dask():
    """Servers on 127.0.0.1 that answer, but not as a Dask scheduler: name -> address."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    http = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    socks = {}
    for name in ("garbage", "silent"):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        socks[name] = s

        def serve(s=s, name=name):
            conns = []
            while True:
                try:
                    c, _ = s.accept()
                except OSError:
                    return
                conns.append(c)
                if name == "garbage":
                    c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4)
        threading.Thread(target=serve, daemon=True).start()
    yield {"http": f"tcp://127.0.0.1:{http.server_address[1]}",
           **{n: f"tcp://127.0.0.1:{s.getsockname()[1]}" for n, s in socks.items()}}
    http.shutdown()
    http.server_close()
    for s in socks.values():
        s.close()


@pytest.mark.parametrize("server", ["garbage", "http", "silent"])
def test_a_scheduler_address_that_is_not_dask_is_one_line_in_seconds(tmp_path, monkeypatch, not_dask, server):
    import time

    monkeypatch.setattr(sw, "CONNECT_TIMEOUT", 1.0)
    address = not_dask[server]
    started = time.monotonic()
    r = CliRunner().invoke(main, ["sweep", str(tiny_spec(tmp_path)), "--out", str(tmp_path / "o"), "--scheduler",
                                  address])
    assert time.monotonic() - started < 8
    assert r.exit_code == 1 and len(r.output.splitlines()) == 1, r.output
    assert r.output.startswith(f"Error: --scheduler {address}: no Dask scheduler answered there (")
    assert "`dask scheduler`" in r.output and "the dashboard's port is not the scheduler's" in r.output


def test_cli_says_why_the_folder_cannot_be_used(tmp_path):
    spec = tiny_spec(tmp_path)
    broken = tmp_path / "broken"
    broken.symlink_to(tmp_path / "gone")
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(broken)])
    assert r.exit_code == 1 and r.output == (f"Error: {broken} is a broken link (to {tmp_path / 'gone'}, which does not "
                                             "exist). Remove it, or choose another --out.\n")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(locked)])
        assert r.exit_code == 1 and r.output == (f"Error: Cannot write in the sweep's folder {locked} (no permission). "
                                                 "Choose another --out.\n")


def _fake_sweep(monkeypatch, during):
    """run_sweep replaced: calls ``during(on_start)``, and returns an empty, interrupted result on Ctrl-C."""
    def run_sweep(spec, out, on_start=None, **kwargs):
        try:
            during(on_start)
            return sw.SweepResult(2, 0, 0, 0, [], Path(out), [])
        except KeyboardInterrupt:
            return sw.SweepResult(2, 0, 0, 0, [], Path(out), [], interrupted=True)
    monkeypatch.setattr(sw, "run_sweep", run_sweep)


def test_cli_says_it_waits_for_workers_and_stops_on_sigterm_as_on_ctrl_c(tmp_path, monkeypatch):
    def no_workers(on_start):
        on_start(sw.SweepPlan(2, 0, 2, 0, "tcp://10.0.0.5:8786"))
        os.kill(os.getpid(), signal.SIGTERM)
    _fake_sweep(monkeypatch, no_workers)
    before = signal.getsignal(signal.SIGTERM)
    r = CliRunner().invoke(main, ["sweep", str(tiny_spec(tmp_path)), "--out", str(tmp_path / "o")])
    assert "waiting for workers: start `dask worker tcp://10.0.0.5:8786`" in r.output
    assert r.exit_code == 130 and "Interrupted: the runs done are kept" in r.output
    assert signal.getsignal(signal.SIGTERM) is before


def test_help_has_an_example():
    out = CliRunner().invoke(main, ["sweep", "--help"]).output
    assert "digitnet sweep sweep.toml --out sweep-eta" in out and "[grid]" in out and "--scheduler" in out


# --- results on disk, with a cluster in this process -------------------------------------


@pytest.fixture(scope="module")
def threads_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0")
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_a_second_run_skips_the_runs_done(tmp_path, threads_client):
    spec, out = tiny_spec(tmp_path, seeds="[0]"), tmp_path / "out"
    first = sw.run_sweep(spec, out, client=threads_client)
    assert (first.runs, first.new, first.skipped, first.failed) == (2, 2, 0, 0)
    assert [r["status"] for r in lines(out)] == ["done", "done"]
    assert all((out / r["model"]).is_file() for r in lines(out))
    assert not list((out / "models").glob(".*.tmp"))
    again = sw.run_sweep(spec, out, client=threads_client)
    assert (again.new, again.skipped) == (0, 2) and len(lines(out)) == 2
    more = sw.run_sweep(tiny_spec(tmp_path, seeds="[0, 1]"), out, client=threads_client)
    assert (more.new, more.skipped) == (2, 2) and len(lines(out)) == 4
    assert [r["seeds"] for r in more.summary] == [[0, 1], [0, 1]]
    assert "| eta=1 | 1 | 0,1 |" in (out / "summary.md").read_text()
    # the time is the training's (the epochs' gradient steps), the start-up is in wall_seconds
    for r in lines(out):
        assert r["seconds"] == sum(e["seconds"] for e in r["epochs"]) and r["wall_seconds"] >= r["seconds"]
    # a done run whose model was deleted runs again
    (out / lines(out)[0]["model"]).unlink()
    rerun = sw.run_sweep(spec, out, client=threads_client)
    assert (rerun.new, rerun.skipped) == (1, 3) and (out / lines(out)[-1]["model"]).is_file()


def test_edited_results_are_refused_or_left_out_of_the_summary(tmp_path, threads_client):
    spec, out = tiny_spec(tmp_path, grid="eta = [1.0]", seeds="[0]"), tmp_path / "out"
    sw.run_sweep(spec, out, client=threads_client)
    good = lines(out)[0]
    made_up = {**good, "key": "0123456789abcdef", "test_accuracy": 1.0}
    (out / "results.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(made_up) + "\n")
    kept = sw.run_sweep(spec, out, client=threads_client)
    assert kept.foreign == 1 and kept.new == 0 and kept.summary[0]["test_accuracy_max"] == good["test_accuracy"]
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out)])
    assert r.exit_code == 0 and "1 run is in " in r.output and "is no run of this spec" in r.output
    for bad in ({"test_accuracy": None}, {"test_accuracy": "0.9"}, {"test_accuracy": 7}, {"seconds": -1}):
        (out / "results.jsonl").write_text(json.dumps({**good, **bad}) + "\n" + json.dumps(good) + "\n")
        with pytest.raises(DataError, match=r"results.jsonl, line 1: a run recorded done without its test_accuracy"):
            sw.run_sweep(spec, out, client=threads_client)


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, threads_client):
    spec = write_spec(tmp_path / "s.toml", """
seeds = [0]
[base]
layers = [784, 32, 10]
train_size = 300
epochs = 1
engine = "numpy"
activation = "relu"
output_activation = "identity"
init = "he"
[grid]
eta = [0.01, 50.0]
""")
    result = sw.run_sweep(spec, tmp_path / "out", client=threads_client)
    assert (result.new, result.failed) == (2, 1)
    ok, bad = sorted(lines(tmp_path / "out"), key=lambda r: r["config"]["eta"])
    assert ok["status"] == "done" and ok["test_accuracy"] > 0.1
    assert bad["status"] == "failed" and bad["model"] is None
    assert bad["error"].startswith("DivergenceError: Training diverged in epoch 1")
    row = result.summary[1]
    assert row["failed_seeds"] == [0] and row["test_accuracy_median"] is None
    assert "| eta=50 | 1 | - | - | - | - | 0 |" in (tmp_path / "out" / "summary.md").read_text()
    # run again: the failed run runs again (and fails again), the one done is skipped
    again = sw.run_sweep(spec, tmp_path / "out", client=threads_client)
    assert (again.new, again.skipped, again.failed) == (1, 1, 1)


def test_a_partial_last_line_is_tolerated_and_a_bad_line_elsewhere_is_not(tmp_path, threads_client):
    spec, out = tiny_spec(tmp_path, seeds="[0]"), tmp_path / "out"
    sw.run_sweep(spec, out, client=threads_client)
    done = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    (out / "results.jsonl").write_bytes(done[0] + done[1][:50])  # killed while writing the second line
    result = sw.run_sweep(spec, out, client=threads_client)
    assert (result.new, result.skipped) == (1, 1)
    records = lines(out)  # every line whole again
    assert len(records) == 2 and {r["key"] for r in records} == {r.key for r in sw.load_spec(spec).expand()}
    (out / "results.jsonl").write_bytes(b"{not json\n" + done[0])
    with pytest.raises(DataError, match=r"results.jsonl, line 1: not a run's record"):
        sw.run_sweep(spec, out, client=threads_client)


def test_ctrl_c_keeps_the_runs_done_and_the_next_run_does_the_rest(tmp_path, threads_client):
    spec, out = tiny_spec(tmp_path, grid="eta = [1.0, 2.0, 3.0]", seeds="[0]"), tmp_path / "out"

    def interrupt(record):
        raise KeyboardInterrupt

    first = sw.run_sweep(spec, out, client=threads_client, on_result=interrupt)
    assert first.interrupted and first.new == 1 and len(lines(out)) == 1
    assert sorted(len(row["seeds"]) for row in first.summary) == [0, 0, 1]
    assert "2 runs not run yet (the sweep was interrupted)" in (out / "summary.md").read_text()
    rest = sw.run_sweep(spec, out, client=threads_client)
    assert (rest.new, rest.skipped, rest.interrupted) == (2, 1, False)
    assert sorted(r["key"] for r in lines(out)) == sorted(r.key for r in sw.load_spec(spec).expand())


def test_two_sweeps_never_write_to_one_folder_at_once(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / sw.LOCK, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(FileWriteError, match="Another sweep is writing to"):
            sw.run_sweep(tiny_spec(tmp_path), out, client=object())


# --- a real cluster: a scheduler on 127.0.0.1 and two worker processes ----------------------------


@pytest.fixture(scope="module")
def process_cluster():
    """The local cluster `digitnet sweep` starts (LocalCluster, worker processes under nannies)."""
    from distributed import Client

    cluster = sw.local_cluster(2)
    client = Client(cluster)
    client.wait_for_workers(2, timeout=120)
    yield client
    client.close()
    cluster.close()


def test_local_workers_run_blas_and_openmp_on_one_thread(process_cluster):
    def threads():
        import numpy  # noqa: F401 (loads BLAS)
        from threadpoolctl import threadpool_info

        return ({k: os.environ.get(k) for k in sw.ONE_THREAD}, sorted({p["num_threads"] for p in threadpool_info()}),
                os.getpid())

    answers = process_cluster.run(threads)
    assert len(answers) == 2
    for env, counts, pid in answers.values():
        assert env == sw.ONE_THREAD and counts == [1] and pid != os.getpid()


def test_cli_sweep_on_a_cluster_equals_digitnet_train(tmp_path, process_cluster, mnist):
    spec, out = tiny_spec(tmp_path, grid="eta = [3.0]", seeds="[0]", validation=True), tmp_path / "out"
    address = process_cluster.scheduler.address
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out), "--scheduler", address])
    assert r.exit_code == 0, r.output
    said = r.output.splitlines()  # not a terminal: a line per run, then the table
    assert said[0] == f"Sweep {spec}: 1 run, 0 already done in {out}, 1 to run on 2 workers (the cluster at {address})."
    assert said[1].startswith("1/1  eta=3, seed 0: ") and said[1].endswith(" s")
    assert said[2].split() == ["configuration", "seeds", "test", "(median)", "min", "-", "max", "validation", "time",
                               "failed"]
    tiny_spec(tmp_path, grid="eta = [3.0]", seeds="[0, 1]", validation=True)
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out), "--scheduler", address, "--json"])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output)
    assert {k: answer[k] for k in ("runs", "new", "skipped", "failed")} == {"runs": 2, "new": 1, "skipped": 1,
                                                                             "failed": 0}
    records = lines(out)
    assert os.getpid() not in {r["pid"] for r in records}  # trained in the worker processes
    row = answer["summary"][0]
    assert row["validation_accuracy_median"] is not None and row["seeds"] == [0, 1]
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    # `digitnet train` with the run's settings (its config file): the same accuracies, the same weights
    from digitnet.io.model_io import load_model
    from digitnet.training.settings import settings_to_toml

    rec = records[0]
    (tmp_path / "run.toml").write_text(settings_to_toml(*settings_from_dict(rec["config"])))
    t = CliRunner().invoke(main, ["train", "--config", str(tmp_path / "run.toml"), "--out",
                                  str(tmp_path / "cli.safetensors"), "--json"])
    assert t.exit_code == 0, t.output
    trained = json.loads(t.output)
    assert (trained["test_accuracy"], trained["epochs"][-1]["validation_accuracy"]) == \
        (rec["test_accuracy"], rec["validation_accuracy"])
    ours, theirs = load_model(out / rec["model"]).net, load_model(tmp_path / "cli.safetensors").net
    assert all((a == b).all() for a, b in zip(ours.weights, theirs.weights))


def test_run_sweep_starts_and_closes_its_own_cluster(tmp_path, monkeypatch):
    """Without a client or scheduler: a local cluster of the workers asked for, closed at the end
    (a cluster of threads here, to keep the test short; the processes one is the fixture's)."""
    from distributed import LocalCluster

    made = []

    def local_cluster(workers):
        made.append(LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                                 dashboard_address="127.0.0.1:0"))
        return made[-1]

    monkeypatch.setattr(sw, "local_cluster", local_cluster)
    result = sw.run_sweep(tiny_spec(tmp_path, grid="eta = [1.0]", seeds="[0]"), tmp_path / "out", workers=1)
    assert (result.new, result.failed) == (1, 0)
    assert len(made) == 1 and made[0].status.name == "closed"


def test_killing_a_worker_mid_sweep_loses_nothing_and_repeats_nothing(tmp_path, process_cluster, mnist):
    """Kill one worker process (SIGKILL) while it trains: Dask runs its runs again elsewhere;
    every run ends up in results.jsonl once, done, equal to a plain training."""
    spec = tiny_spec(tmp_path, grid="eta = [0.5, 1.0, 3.0]", seeds="[0, 1]", train_size=1000)
    killed: dict = {}

    def on_result(record):
        if killed:
            return
        for worker, keys in process_cluster.processing().items():
            if keys:  # a worker in the middle of a run: kill its process
                pid = process_cluster.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                killed.update(pid=pid, keys={k.split("-")[2] for k in keys})
                return

    address = process_cluster.scheduler.address
    result = sw.run_sweep(spec, tmp_path / "out", scheduler=address, on_result=on_result)
    assert killed, "no worker was in the middle of a run"
    records = lines(tmp_path / "out")
    runs = sw.load_spec(spec).expand()
    assert sorted(r["key"] for r in records) == sorted(r.key for r in runs)  # each run exactly once
    assert all(r["status"] == "done" for r in records) and (result.new, result.failed) == (6, 0)
    # what the killed worker was training was trained again, by another worker process
    assert any(rec["key"] in killed["keys"] and rec["pid"] != killed["pid"] for rec in records)
    for rec in records:
        assert (rec["test_accuracy"], rec["validation_accuracy"]) == plain_train(rec["config"], tmp_path, mnist)


def test_the_figure_keeps_its_legend_and_labels_off_the_points_and_inside_the_axes():
    from digitnet.plots import sweep_figure

    rows = [{"label": f"a long configuration name number {i}", "seconds_median": 1.0 + i, "seeds": [0, 1],
             "test_accuracy_median": 0.9 + 0.01 * i, "test_accuracy_min": 0.85, "test_accuracy_max": 0.99,
             "validation_accuracy_median": None} for i in range(5)]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = sweep_figure(rows)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    box = ax.get_window_extent(renderer)
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(box)  # outside the axes: covers no point and no bar
    for text in ax.texts:
        t = text.get_window_extent(renderer)
        assert box.x0 <= t.x0 and t.x1 <= box.x1, text.get_text()
