#!/usr/bin/env python3
"""Soak: a miner and a validator daemon under real clients for N minutes.

What runs (all on loopback, every process stopped by its own PID at the end,
also on failure):

- the local subtensor chain (`../shared/chain/localnet.sh`: Chopsticks running
  the node-subtensor runtime), set up by `setup_subnet.py`, a block asked for every second;
- `akihabara miner run` (//miner1, uid 2) with a fleet of one local executor,
  and `akihabara validator run` (//validator1, uid 0) doing proof-of-work rounds;
- the official Python `bittensor` 10.5.0 Dendrite (//validator2, uid 1, a
  permitted validator) calling the miner's axon with `Ping`, 16 calls in flight,
  for the whole run;
- a validator-side job client (`examples/soak-jobs.rs`) submitting small jobs
  (`JobSubmit`, `JobQuery`) and keeping the receipts;
- mid-run the chain is stopped (by its PID) and started again on the same port
  (state is rebuilt by `setup_subnet.py`; Chopsticks keeps none), and later the
  miner is killed with SIGKILL and restarted on the same state directory;
- after the soak, the same Python Dendrite load against the official Python
  `bt.Axon` serving `Ping`, to compare the CPU each axon spends per call.

It prints a table and writes it as JSON (`--out`). It exits 1 when a receipt is
lost or a daemon does not recover.

Run (release binary and the job client first):
    export CARGO_TARGET_DIR=...   # where the release build is
    cargo build --release -p akihabara-cli --example soak-jobs --bin akihabara
    python3 scripts/soak.py --minutes 10 --out soak.json

Needs the peer venvs that `.ci/run` builds:
    ~/.cache/akihabara-peers/bittensor-10.5.0 (bittensor==10.5.0)
    ~/.cache/akihabara-peers/substrate-interface-1.8.1 (substrate-interface==1.8.1)
and Node + npm for the chain (the Chopsticks install is kept in
~/.cache/akihabara-chain, as the tests keep it).

`soak.py load ...` is the Dendrite load process (run under the bittensor venv).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS_PY = ROOT / "akihabara-cli/tests/peers"
CHAIN = ROOT.parent / "shared/chain"
HOME = Path(os.environ.get("HOME", "/tmp"))
PEERS = Path(os.environ.get("AKIHABARA_PEERS_DIR", HOME / ".cache/akihabara-peers"))
BT_PY = PEERS / "bittensor-10.5.0/bin/python"
SI_PY = PEERS / "substrate-interface-1.8.1/bin/python"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- load mode


def load_main(a):
    """The official bittensor Dendrite calling an axon with Ping, `a.concurrency`
    calls in flight, until stdin closes. Prints cumulative counts as JSON lines."""
    sys.path.insert(0, str(PEERS_PY))
    import asyncio

    import bittensor_peer  # guards every socket: loopback only

    bt, Ping, _ = bittensor_peer.legacy()

    async def run():
        wallet = bt.Wallet(name=a.wallet_name, hotkey="default", path=a.wallet_path)
        d = bt.Dendrite(wallet=wallet)
        info = bt.AxonInfo(version=0, ip=a.ip, port=a.port, ip_type=4, hotkey=a.axon_hotkey, coldkey=a.axon_hotkey)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)), daemon=True).start()
        statuses, lat = {}, [0.0]

        async def worker(w):
            i = 0
            while not stop.is_set():
                i += 1
                t0 = time.monotonic()
                try:
                    syn = await d.call(info, Ping(message="soak", count=i), timeout=12.0, deserialize=False)
                    code = str(syn.dendrite.status_code)
                except Exception as e:  # noqa: BLE001 - counted, never fatal
                    code = "exception:" + type(e).__name__
                lat[0] += time.monotonic() - t0
                statuses[code] = statuses.get(code, 0) + 1
                if code != "200":
                    await asyncio.sleep(0.05)  # a miner that is down is not spun on

        def report():
            n = sum(statuses.values())
            print(json.dumps({"t": time.time(), "calls": n, "ok": statuses.get("200", 0),
                              "status": dict(statuses), "mean_ms": 1e3 * lat[0] / max(n, 1)}), flush=True)

        async def reporter():
            while not stop.is_set():
                report()
                await asyncio.sleep(0.5)

        print(json.dumps({"event": "ready"}), flush=True)
        await asyncio.gather(reporter(), *(worker(w) for w in range(a.concurrency)))
        report()
        await d.aclose_session()

    asyncio.run(run())


# ---------------------------------------------------------------- helpers


def free_port(ip="127.0.0.1"):
    s = socket.socket()
    s.bind((ip, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def port_free(ip, port):
    s = socket.socket()
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def http(url, data=None, timeout=10):
    """(status, body); status 0 when nothing answered."""
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (OSError, urllib.error.URLError):
        return 0, ""


def proc_stats(pid):
    """RSS (MiB), open descriptors, CPU seconds (user + system, all threads)."""
    try:
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        stat = Path(f"/proc/{pid}/stat").read_text()
        f = stat[stat.rfind(")") + 2:].split()
        cpu = (int(f[11]) + int(f[12])) / CLK_TCK
        return {"rss_mib": round(rss, 1), "fds": fds, "cpu_s": cpu}
    except (OSError, ValueError, IndexError):
        return None


def cpu_per_s(pid, seconds):
    """CPU seconds per second that `pid` spends over the next `seconds`."""
    c0 = proc_stats(pid)["cpu_s"]
    time.sleep(seconds)
    return round((proc_stats(pid)["cpu_s"] - c0) / seconds, 4)


def metrics(port):
    """The daemon's counters: {name or name{labels}: value}."""
    code, text = http(f"http://127.0.0.1:{port}/metrics")
    out = {}
    if code != 200:
        return None
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def requests_by_status(m):
    out = {}
    for k, v in (m or {}).items():
        if k.startswith("akihabara_axon_requests_total{"):
            out[k.split('status="')[1].split('"')[0]] = int(v)
    return out


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Proc:
    """A child process, its JSON stdout lines collected by a thread; stopped by its PID."""

    def __init__(self, name, cmd, log_path, stdin=False, env=None):
        self.name = name
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, env=env)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.p.stdout:
            self.log.write(b"stdout: " + raw)
            self.log.flush()
            try:
                v = json.loads(raw)
            except ValueError:
                continue
            if isinstance(v, dict):
                v["_t"] = time.monotonic()
            with self.cond:
                self.lines.append(v)
                self.cond.notify_all()

    @property
    def pid(self):
        return self.p.pid

    def wait_for(self, pred, timeout):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for v in self.lines:
                    if pred(v):
                        return v
                left = end - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    raise RuntimeError(f"{self.name}: no such event within {timeout}s (see {self.log.name})")
                self.cond.wait(min(left, 1.0))

    def last(self, pred=lambda v: True):
        with self.cond:
            for v in reversed(self.lines):
                if pred(v):
                    return v
        return None

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except (OSError, AttributeError):
            pass

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, sig)
                # A process paused with SIGSTOP (the validator during the
                # CPU phases) acts on the signal only once it runs again.
                os.kill(self.p.pid, signal.SIGCONT)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait()
            except ProcessLookupError:
                pass
        return self.p.returncode


# ---------------------------------------------------------------- the chain


class Chain:
    """localnet.sh on a free port, in a work dir of its own beside the shared install."""

    def __init__(self, work):
        self.port = free_port()
        self.work = work / "chain"
        self.work.mkdir(parents=True)
        base = HOME / ".cache/akihabara-chain"
        if not (base / "node_modules/.bin/chopsticks").exists():
            self._script("install", work=base)
        (self.work / "node_modules").symlink_to(base / "node_modules")
        # A pinned genesis: the restarted chain has the same genesis hash.
        self.genesis_ms = str(int(time.time()) * 1000)
        self.url = f"ws://127.0.0.1:{self.port}"

    def _script(self, action, work=None, lifetime="7200"):
        env = dict(os.environ, CHAIN_PORT=str(self.port if work is None else 0),
                   CHAIN_WORK_DIR=str(work or self.work), CHAIN_LIFETIME_S=lifetime)
        if work is None:
            env["GENESIS_TIMESTAMP_MS"] = self.genesis_ms
        o = subprocess.run(["bash", str(CHAIN / "localnet.sh"), action], env=env,
                           capture_output=True, text=True, timeout=600)
        if o.returncode != 0:
            raise RuntimeError(f"localnet.sh {action}: {o.stdout}{o.stderr}")
        return o.stdout.strip()

    def pid(self):
        try:
            return int((self.work / "chopsticks.pid").read_text())
        except (OSError, ValueError):
            return None

    def start_and_setup(self):
        t = time.monotonic()
        log(self._script("start"))
        o = subprocess.run([str(SI_PY), str(CHAIN / "setup_subnet.py"), "--url", self.url,
                            "--json-out", str(self.work / "setup.json")],
                           capture_output=True, text=True, timeout=600)
        if o.returncode != 0:
            raise RuntimeError(f"setup_subnet.py: {o.stdout[-2000:]}{o.stderr[-2000:]}")
        log(f"chain up and set up in {time.monotonic() - t:.0f}s")

    def stop(self):
        if self.pid():
            log(self._script("stop"))

    def rpc(self, method, params):
        body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": method, "params": params}).encode()
        code, text = http(f"http://127.0.0.1:{self.port}", body, timeout=30)
        return json.loads(text).get("result") if code == 200 and text else None

    def head(self):
        h = self.rpc("chain_getHeader", [])
        return int(h["number"], 16) if h else None


class Pump(threading.Thread):
    """One block a second (Chopsticks builds blocks on demand); pausable."""

    def __init__(self, chain):
        super().__init__(daemon=True)
        self.chain, self.paused, self.stopped, self.blocks = chain, threading.Event(), threading.Event(), 0

    def run(self):
        while not self.stopped.is_set():
            if not self.paused.is_set() and self.chain.rpc("dev_newBlock", [{"count": 1}]) is not None:
                self.blocks += 1
            time.sleep(1)


# ---------------------------------------------------------------- the soak


def run_cli(binary, *args):
    o = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)
    if o.returncode != 0:
        raise RuntimeError(f"akihabara {' '.join(args)}: {o.stderr}")
    return o.stdout


def receipts(path):
    """Every receipt line of a store: its previous generation (`<path>.1`,
    left by a rotation) and the file."""
    out, text = [], ""
    for p in (Path(f"{path}.1"), Path(path)):
        try:
            text += p.read_text() + "\n"
        except FileNotFoundError:
            pass
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a torn last line after a kill: ReceiptStore skips it too
    return out


def kind_of(r):
    return r.get("kind", "?")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode")
    lp = sub.add_parser("load")
    lp.add_argument("--wallet-path", required=True)
    lp.add_argument("--wallet-name", required=True)
    lp.add_argument("--ip", required=True)
    lp.add_argument("--port", type=int, required=True)
    lp.add_argument("--axon-hotkey", required=True)
    lp.add_argument("--concurrency", type=int, default=16)
    cp = sub.add_parser("cpu", help="only the CPU-per-call comparison, without chain or daemons")
    cp.add_argument("--rounds", type=int, default=3, help="rounds, each axon loaded once per round (default 3)")
    cp.add_argument("--window", type=float, default=30.0, help="seconds of each window (default 30)")
    cp.add_argument("--concurrency", type=int, default=16, help="Python dendrite calls in flight (default 16)")
    cp.add_argument("--bin-dir", default=None, help="where `akihabara` is (default $CARGO_TARGET_DIR/release)")
    cp.add_argument("--out", default="cpu.json", help="the results as JSON")
    cp.add_argument("--serve-arg", action="append", default=[],
                    help="an extra argument for `akihabara axon serve` (repeatable)")
    cp.add_argument("--env-b", action="append", default=[], metavar="KEY=VALUE",
                    help="also load a second `akihabara axon serve` with this environment (repeatable), to compare")
    cp.add_argument("--bin-b", default=None, metavar="PATH",
                    help="also load a second `akihabara axon serve` from this binary (another build), to compare")
    cp.add_argument("--floor", action="store_true",
                    help="also load examples/axon-floor (hyper, a canned answer, one signature check), the same "
                         "without the check, and both without hyper (--raw): the least an axon on hyper, or on any "
                         "HTTP server, pays per call here with and without the check")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    ap.add_argument("--window", type=float, default=60.0, help="seconds of each CPU-per-call window (default 60)")
    ap.add_argument("--concurrency", type=int, default=16, help="Python dendrite calls in flight (default 16)")
    ap.add_argument("--out", default="soak.json", help="the results as JSON")
    ap.add_argument("--bin-dir", default=None,
                    help="where `akihabara` and `examples/soak-jobs` are (default $CARGO_TARGET_DIR/release)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    if a.mode == "load":
        return load_main(a)
    if a.mode == "cpu":
        return cpu_only(a)
    return soak(a)


class Health(threading.Thread):
    """Samples both daemons' /health once a second; keeps every change of status."""

    def __init__(self, t0, ports):
        super().__init__(daemon=True)
        self.t0, self.ports, self.stopped = t0, ports, threading.Event()
        self.last, self.changes, self.counts = {}, [], {}

    def run(self):
        while not self.stopped.is_set():
            for name, port in list(self.ports.items()):
                code = http(f"http://127.0.0.1:{port}/health", timeout=5)[0]
                c = self.counts.setdefault(name, {})
                c[str(code)] = c.get(str(code), 0) + 1
                if self.last.get(name) != code:
                    self.last[name] = code
                    self.changes.append((round(time.monotonic() - self.t0, 1), name, code))
            time.sleep(1)

    def first(self, name, pred, after):
        """Seconds (since t0) of the first change of `name` after `after` whose status passes `pred`."""
        for t, n, code in self.changes:
            if n == name and t >= after and pred(code):
                return t
        return None


def cpu_window(pid, metrics_port, load, seconds):
    """CPU seconds of `pid` and calls over `seconds`: the axon's requests (from
    /metrics, when given) and the Python dendrite's answered calls."""
    def read():
        m = metrics(metrics_port) if metrics_port else None
        lo = load.last(lambda v: "calls" in v) or {}
        return proc_stats(pid)["cpu_s"], sum(requests_by_status(m).values()) if m else None, lo.get("calls", 0), lo.get("ok", 0), time.monotonic()

    c0, r0, n0, ok0, t0 = read()
    time.sleep(seconds)
    c1, r1, n1, ok1, t1 = read()
    secs, cpu = t1 - t0, c1 - c0
    w = {"seconds": round(secs, 1), "cpu_s": round(cpu, 2), "dendrite_calls": n1 - n0, "dendrite_ok": ok1 - ok0}
    # Without /metrics, the calls the dendrite saw answered with 200.
    calls = (r1 - r0) if r0 is not None else (ok1 - ok0)
    w.update({"calls": calls, "calls_per_s": round(calls / secs, 1), "cpu_ms_per_call": round(1e3 * cpu / max(calls, 1), 3)})
    return w


def soak(a):
    bin_dir = Path(a.bin_dir or Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release")
    akihabara, jobs_bin = bin_dir / "akihabara", bin_dir / "examples/soak-jobs"
    for p, what in [(akihabara, "the release binary"), (jobs_bin, "the job client"),
                    (BT_PY, "the bittensor 10.5.0 venv"), (SI_PY, "the substrate-interface venv"),
                    (CHAIN / "localnet.sh", "the local chain")]:
        if not p.exists():
            sys.exit(f"soak: {what} is missing: {p}\n(see the top of {__file__})")
    # SIGTERM ends the run like Ctrl-C: everything started is stopped first.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="akihabara-soak-"))
    log(f"work dir {work}")
    total = a.minutes * 60
    procs = {}
    chain = pump = monitor = None
    result = {"machine": machine(), "minutes": a.minutes, "concurrency": a.concurrency,
              "chain": "local subtensor (Chopsticks, node-subtensor runtime spec 293)",
              "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "load_average_at_start": os.getloadavg()}
    failures = []
    try:
        chain = Chain(work)
        chain.start_and_setup()
        wallets = work / "wallets"
        for name, uri in [("v1", "//validator1"), ("v2", "//validator2"), ("m1", "//miner1")]:
            run_cli(akihabara, "wallet", "regen-hotkey", "--uri", uri, "--wallet.path", str(wallets), "--wallet.name", name)
        run_cli(akihabara, "wallet", "create", "--wallet.path", str(wallets), "--wallet.name", "py", "--no-password")

        common = lambda name: (  # noqa: E731
            f'[wallet]\npath = "{wallets}"\nname = "{name}"\n\n'
            f'[chain]\nnetwork = "{chain.url}"\nnetuid = 2\ntimeout = "20s"\n\n'
            f'[state]\ndir = "{work / (name + "-state")}"\n\n[metrics]\nlisten = "127.0.0.1:0"\n')
        # 127.0.0.2:8093 is what setup_subnet.py publishes for //miner1, so the
        # validator finds the miner again on the restarted chain.
        axon_port = 8093 if port_free("127.0.0.2", 8093) else free_port("127.0.0.2")
        fleet = work / "fleet.toml"
        fleet.write_text('[health]\ninterval = "5s"\n\n[[executors]]\nid = "here"\nbackend = "local"\n'
                         'class = "cpu"\nunsafe_share_miner_user = true\n')
        miner_toml = work / "m1.toml"
        miner_toml.write_text(common("m1") + f'\n[axon]\nip = "127.0.0.2"\nport = {axon_port}\nexternal_ip = "127.0.0.2"\n\n'
                              f'[pow]\nprover = "cpu"\n\n[executors]\nfleet = "{fleet}"\n\n'
                              # The local chain's tempo is 10: a 20-block window.
                              '[schedule]\nmin_blocks = 5\n')
        validator_toml = work / "v1.toml"
        validator_toml.write_text(common("v1") + '\n[validator]\nround_blocks = 2\npoll = "1s"\n\n'
                                  '[pow]\nn = 256\ncount = 1\nsamples = 8\nconcurrency = 1\ntimeout = "30s"\n')

        def start_miner(tag):
            p = Proc("miner", [str(akihabara), "miner", "run", "--config", str(miner_toml)], work / f"miner-{tag}.log")
            procs["miner"] = p
            return p, p.wait_for(lambda v: v.get("event") == "ready", 180)

        miner, mready = start_miner("1")
        hotkey, ports = mready["hotkey"], {"miner": mready["metrics_port"]}
        log(f"miner ready: uid {mready['uid']}, axon 127.0.0.2:{mready['port']}, pid {miner.pid}")
        validator = Proc("validator", [str(akihabara), "validator", "run", "--config", str(validator_toml)],
                         work / "validator.log")
        procs["validator"] = validator
        vready = validator.wait_for(lambda v: v.get("event") == "ready", 180)
        ports["validator"] = vport = vready["metrics_port"]
        log(f"validator ready: uid {vready['uid']}, pid {validator.pid}")
        pump = Pump(chain)
        pump.start()
        time.sleep(5)
        idle_stats = {"miner": proc_stats(miner.pid), "validator": proc_stats(validator.pid)}
        # The miner's own background (chain, the validator's proof-of-work
        # rounds, /health), before any client.
        result["miner_idle_cpu_per_s"] = cpu_per_s(miner.pid, 20)

        def start_load(name, ip, port, axon_hotkey):
            p = Proc(name, [str(BT_PY), __file__, "load", "--wallet-path", str(wallets), "--wallet-name", "v2",
                            "--ip", ip, "--port", str(port), "--axon-hotkey", axon_hotkey,
                            "--concurrency", str(a.concurrency)], work / f"{name}.log", stdin=True)
            procs[name] = p
            p.wait_for(lambda v: v.get("event") == "ready", 120)
            return p

        load = start_load("load", "127.0.0.2", mready["port"], hotkey)
        jobs = Proc("jobs", [str(jobs_bin), "--uri", "//validator1", "--ip", "127.0.0.2", "--port", str(mready["port"]),
                             "--miner", hotkey, "--store", str(work / "validator-receipts.jsonl")],
                    work / "jobs.log", stdin=True)
        procs["jobs"] = jobs
        jobs.wait_for(lambda v: v.get("event") == "ready", 30)
        t0 = time.monotonic()
        monitor = Health(t0, ports)
        monitor.start()
        log(f"load and jobs running; the soak of {total:.0f}s starts")
        time.sleep(10)
        start_stats = {"miner": proc_stats(miner.pid), "validator": proc_stats(validator.pid)}

        metrics_before_kill = {}
        plan = {"window": min(60.0, 0.1 * total), "restart": 0.25 * total, "kill": 0.7 * total}
        done = set()
        # A slow chain restart may push the kill past the end: the soak then runs until it is done.
        while time.monotonic() - t0 < total or "kill" not in done:
            now = time.monotonic() - t0
            if "window" not in done and now >= plan["window"]:
                done.add("window")
                log("miner CPU window under the whole soak (dendrite, jobs, validator, chain)")
                result["ours_soak_window"] = w = cpu_window(miner.pid, ports["miner"], load, a.window)
                log(f"  {w}")
            elif "restart" not in done and now >= plan["restart"]:
                done.add("restart")
                ev = {"at_s": round(now, 1), "head_before": chain.head(), "chain_pid_before": chain.pid()}
                pump.paused.set()
                chain.stop()
                t_down = time.monotonic() - t0
                time.sleep(30)  # the daemons notice (health 503) while the chain is gone
                t_up = time.monotonic() - t0
                chain.start_and_setup()
                head_after_setup = chain.head()
                # Chopsticks keeps no state: the subnet is set up again, and the
                # height continues where it stopped, as on a restarted node.
                if ev["head_before"] and head_after_setup and head_after_setup <= ev["head_before"]:
                    chain.rpc("dev_newBlock", [{"count": 1, "unsafeBlockHeight": ev["head_before"] + 1}])
                pump.paused.clear()
                t_set = time.monotonic() - t0
                ev.update({"chain_pid_after": chain.pid(), "head_after_setup": head_after_setup,
                           "head_continued_at": chain.head(),
                           "down_s": round(t_set - t_down, 1), "setup_s": round(t_set - t_up, 1)})
                rec = {}
                for name in ("miner", "validator"):
                    deadline = time.monotonic() + 300
                    while monitor.last.get(name) != 200 and time.monotonic() < deadline:
                        time.sleep(1)
                    bad = monitor.first(name, lambda c: c != 200, t_down)
                    good = monitor.first(name, lambda c: c == 200, bad if bad is not None else t_down)
                    rec[name] = {"unhealthy_after_stop_s": None if bad is None else round(bad - t_down, 1),
                                 "healthy_after_chain_start_s": None if good is None else round(good - t_up, 1)}
                    if monitor.last.get(name) != 200:
                        failures.append(f"the {name} did not get healthy again after the chain restart")
                ev["daemons"] = rec
                ev["_t_set"] = t_set
                result["chain_restart"] = ev
                log(f"chain restart: {ev}")
            elif "kill" not in done and now >= plan["kill"]:
                done.add("kill")
                metrics_before_kill = metrics(ports["miner"]) or {}
                before = proc_stats(miner.pid)
                accepted = {v["job_id"] for v in jobs.lines if v.get("event") == "accepted"}
                os.kill(miner.pid, signal.SIGKILL)
                miner.p.wait()
                t_kill = time.monotonic()
                miner, mready = start_miner("2")
                ports["miner"] = mready["metrics_port"]
                ready_s = round(time.monotonic() - t_kill, 1)
                while monitor.last.get("miner") != 200 and time.monotonic() - t_kill < 120:
                    time.sleep(0.5)
                if http(f"http://127.0.0.1:{ports['miner']}/health")[0] != 200:
                    failures.append("the miner did not get healthy again after kill -9")
                result["miner_kill"] = {"at_s": round(t_kill - t0, 1), "miner_before_kill": before,
                                        "jobs_accepted_before_kill": len(accepted), "_accepted_ids": sorted(accepted),
                                        "ready_again_after_s": ready_s,
                                        "healthy_again_after_s": round(time.monotonic() - t_kill, 1),
                                        "requests_before_kill": requests_by_status(metrics_before_kill),
                                        "restarted_pid": miner.pid}
                log(f"miner killed (-9) and restarted: ready again after {ready_s}s, pid {miner.pid}")
            time.sleep(1)

        # The end of the soak: jobs stop, the daemons are measured.
        log("soak done; stopping the job client")
        t_end = time.monotonic() - t0
        end_stats = {"miner": proc_stats(miner.pid), "validator": proc_stats(validator.pid)}
        jobs.close_stdin()
        jobs.p.wait(200)
        m_end, v_end = metrics(ports["miner"]) or {}, metrics(vport) or {}
        req = requests_by_status(metrics_before_kill)
        for k, v in requests_by_status(m_end).items():
            req[k] = req.get(k, 0) + v
        last_load = load.last(lambda v: "calls" in v) or {}

        # CPU per call, a phase each: the same Python dendrite load on our
        # miner (jobs stopped), then on the official Python axon. The
        # validator is paused (SIGSTOP) through both phases, so neither axon
        # answers anything but the Python load: its proof-of-work challenges
        # would otherwise count in our miner's CPU and not in bt.Axon's.
        # The chain keeps running through both.
        os.kill(validator.pid, signal.SIGSTOP)
        result["validator_paused_for_phases"] = True
        time.sleep(3)
        log("phase: Python dendrite -> akihabara miner axon")
        result["ours_window"] = cpu_window(miner.pid, ports["miner"], load, a.window)
        log(f"  {result['ours_window']}")
        load.close_stdin()
        load.p.wait(60)
        # What the miner spends with no client, as in that window (validator
        # paused, chain running, /health sampled): its share of each call.
        time.sleep(1)
        result["miner_background_cpu_per_s_validator_paused"] = cpu_per_s(miner.pid, 10)
        log("phase: Python dendrite -> bittensor 10.5.0 bt.Axon")
        py_port = free_port()
        pyaxon = Proc("pyaxon", [str(BT_PY), str(PEERS_PY / "bittensor_peer.py"), "axon", "--wallet-path", str(wallets),
                                 "--wallet-name", "py", "--port", str(py_port)], work / "pyaxon.log")
        procs["pyaxon"] = pyaxon
        pyready = pyaxon.wait_for(lambda v: v.get("event") == "ready", 120)
        pyload = start_load("pyload", "127.0.0.1", py_port, pyready["hotkey"])
        time.sleep(3)
        result["python_window"] = cpu_window(pyaxon.pid, None, pyload, a.window)
        result["python_window"]["statuses"] = (pyload.last(lambda v: "calls" in v) or {}).get("status")
        log(f"  {result['python_window']}")
        pyload.close_stdin()
        pyload.p.wait(60)
        pyaxon.stop()
        os.kill(validator.pid, signal.SIGCONT)
        after_stats = {"miner": proc_stats(miner.pid), "validator": proc_stats(validator.pid)}
        # Resumed after minutes, the validator catches up at once (rounds,
        # the chain): its descriptors are followed for 10 s, so a passing
        # burst is told from a leak.
        trail = []
        for _ in range(20):
            time.sleep(0.5)
            st = proc_stats(validator.pid)
            if st:
                trail.append(st["fds"])
        if trail and after_stats["validator"]:
            result["validator_fds_after_resume"] = {"at_resume": after_stats["validator"]["fds"],
                                                    "peak_10s": max(trail), "at_10s": trail[-1], "trail": trail}

        # Receipts on both sides.
        jobs_events = jobs.lines
        mrec = receipts(work / "m1-state/jobs/receipts.jsonl")
        vrec = receipts(work / "validator-receipts.jsonl")
        msig = {r["signature"] for r in mrec}
        vsig = {r["signature"] for r in vrec}
        mk = {(r["job_id"], kind_of(r)) for r in mrec}
        vk = {(r["job_id"], kind_of(r)) for r in vrec}
        accepted = [v["job_id"] for v in jobs_events if v.get("event") == "accepted"]
        ends = ("finished", "failed", "lost", "gave_up", "unexpected")
        ended = {v["job_id"]: v["event"] for v in jobs_events if v.get("event") in ends}
        missing = []
        for j in accepted:
            if (j, "accepted") not in mk or (j, "accepted") not in vk:
                missing.append([j, "accepted", (j, "accepted") in mk, (j, "accepted") in vk])
            if ended.get(j) in ("finished", "failed"):
                if (j, "finished") not in mk or (j, "finished") not in vk:
                    missing.append([j, "finished", (j, "finished") in mk, (j, "finished") in vk])
        counts = {}
        for v in jobs_events:
            counts[v.get("event")] = counts.get(v.get("event"), 0) + 1
        lost = len(missing) + len(vsig - msig)
        result["jobs"] = {"submitted": sum(counts.get(e, 0) for e in ("accepted", "not_accepted", "submit_error")),
                          "accepted": len(accepted), "finished": sum(1 for s in ended.values() if s == "finished"),
                          "ended": {s: sum(1 for x in ended.values() if x == s) for s in sorted(set(ended.values()))},
                          "events": counts, "receipts_miner": len(msig), "receipts_validator": len(vsig),
                          "validator_receipts_not_at_miner": len(vsig - msig),
                          "miner_receipts_not_at_validator": len(msig - vsig),
                          "lost_receipts": lost, "missing": missing[:20]}
        if lost:
            failures.append(f"{lost} receipts lost")
        if "miner_kill" in result:
            before = result["miner_kill"].pop("_accepted_ids")
            result["miner_kill"]["accepted_before_kill_with_receipts_on_both_sides"] = sum(
                1 for j in before if (j, "accepted") in mk and (j, "accepted") in vk)
            result["miner_kill"]["jobs_lost_in_the_kill"] = [v["job_id"] for v in jobs_events if v.get("event") == "lost"]

        # What the validator did, before and after the chain restart.
        rounds = [v for v in validator.lines if v.get("event") == "round"]
        weights = [v for v in validator.lines if v.get("event") == "weights"]
        t_set = result.get("chain_restart", {}).pop("_t_set", None)
        after = lambda v: t_set is not None and v["_t"] - t0 >= t_set  # noqa: E731
        uid2 = {"valid": 0, "other": 0}
        for line in (work / "validator.log").read_text(errors="replace").splitlines():
            if "challenged uid=2 " in line:
                uid2["valid" if "verdict=valid" in line else "other"] += 1
        result["validator"] = {"rounds": len(rounds), "rounds_after_chain_restart": sum(1 for v in rounds if after(v)),
                               "weights_set": len(weights), "weights_after_chain_restart": sum(1 for v in weights if after(v)),
                               "challenges_of_our_miner_uid2": uid2,
                               "last_round_block": rounds[-1]["block"] if rounds else None}
        result["processes"] = {"before_clients": idle_stats, "start": start_stats, "end": end_stats,
                               "end_at_s": round(t_end, 1), "after_clients": after_stats}
        result["miner_requests_by_status"] = req
        result["python_dendrite_on_miner"] = {"calls": last_load.get("calls"), "statuses": last_load.get("status"),
                                              "mean_ms": round(last_load.get("mean_ms", 0), 2)}
        result["validator_metrics"] = {k.replace("akihabara_", ""): v for k, v in v_end.items()
                                       if any(s in k for s in ("challenges_", "weights_set_total", "chain_errors_total", "akihabara_block"))
                                       and "bucket" not in k}
        result["miner_chain_errors_since_restart"] = m_end.get("akihabara_chain_errors_total")
        result["blocks_pumped"] = pump.blocks
        result["health"] = {"by_status": monitor.counts, "changes": monitor.changes}
        ours, py = result.get("ours_window"), result.get("python_window")
        if ours and py and ours["cpu_ms_per_call"] > 0:
            result["cpu_per_call_ratio"] = round(py["cpu_ms_per_call"] / ours["cpu_ms_per_call"], 1)
        s = result.get("ours_soak_window")
        if s and py and s["cpu_ms_per_call"] > 0:
            result["cpu_per_call_ratio_under_whole_soak"] = round(py["cpu_ms_per_call"] / s["cpu_ms_per_call"], 1)
        result["load_average_at_end"] = os.getloadavg()
    except Exception as e:  # noqa: BLE001 - reported, then everything is stopped
        failures.append(f"{type(e).__name__}: {e}")
        log(f"FAILED: {e}")
    finally:
        result["failures"] = failures
        for t in (pump, monitor):
            if t:
                t.stopped.set()
        for name in ["load", "pyload", "jobs"]:
            if name in procs:
                procs[name].close_stdin()
        for name, p in reversed(list(procs.items())):
            p.stop()
        if chain:
            try:
                chain.stop()
            except Exception as e:  # noqa: BLE001
                log(f"chain stop: {e}")
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    table(result)
    log(f"results in {a.out}; logs in {work}")
    if not a.keep and not failures:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


# The yardsticks of `--floor` (examples/axon-floor.rs): hyper with and without
# the signature check, and the same without hyper (`--raw`).
FLOORS = [("floor", []), ("floor-no-check", ["--no-check"]),
          ("floor-raw", ["--raw"]), ("floor-raw-no-check", ["--raw", "--no-check"])]


def cpu_only(a):
    """The CPU-per-call comparison alone: `akihabara axon serve` (every signed
    caller served, no metagraph) and bittensor's `bt.Axon`, each under the same
    Python dendrite load in turn, `a.rounds` times. Quicker than the soak, for
    comparing two builds; the soak's numbers are the ones the README reports."""
    bin_dir = Path(a.bin_dir or Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release")
    akihabara = bin_dir / "akihabara"
    for p, what in [(akihabara, "the release binary"), (BT_PY, "the bittensor 10.5.0 venv")]:
        if not p.exists():
            sys.exit(f"soak cpu: {what} is missing: {p}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="akihabara-cpu-"))
    procs, result = {}, {"machine": machine(), "concurrency": a.concurrency, "window_s": a.window,
                         "serve_args": a.serve_arg, "load_average_at_start": os.getloadavg(), "rounds": []}
    try:
        wallets = work / "wallets"
        for name, uri in [("v2", "//validator2"), ("m1", "//miner1")]:
            run_cli(akihabara, "wallet", "regen-hotkey", "--uri", uri, "--wallet.path", str(wallets), "--wallet.name", name)
        run_cli(akihabara, "wallet", "create", "--wallet.path", str(wallets), "--wallet.name", "py", "--no-password")
        ours = Proc("ours", [str(akihabara), "axon", "serve", "--wallet.path", str(wallets), "--wallet.name", "m1",
                             "--ip", "127.0.0.2", "--port", "0", *a.serve_arg], work / "ours.log")
        procs["ours"] = ours
        oready = ours.wait_for(lambda v: v.get("event") == "ready", 60)
        py_port = free_port()
        pyaxon = Proc("pyaxon", [str(BT_PY), str(PEERS_PY / "bittensor_peer.py"), "axon", "--wallet-path", str(wallets),
                                 "--wallet-name", "py", "--port", str(py_port)], work / "pyaxon.log")
        procs["pyaxon"] = pyaxon
        pyready = pyaxon.wait_for(lambda v: v.get("event") == "ready", 120)
        targets = [("akihabara", ours.pid, "127.0.0.2", oready["port"], oready["hotkey"])]
        if a.env_b or a.bin_b:
            env = dict(os.environ, **dict(kv.split("=", 1) for kv in a.env_b))
            bin_b = Path(a.bin_b) if a.bin_b else akihabara
            if not bin_b.exists():
                sys.exit(f"soak cpu: --bin-b {bin_b} does not exist")
            ours_b = Proc("ours-b", [str(bin_b), "axon", "serve", "--wallet.path", str(wallets), "--wallet.name", "m1",
                                     "--ip", "127.0.0.1", "--port", "0", *a.serve_arg], work / "ours-b.log", env=env)
            procs["ours-b"] = ours_b
            bready = ours_b.wait_for(lambda v: v.get("event") == "ready", 60)
            targets.append(("akihabara-b", ours_b.pid, "127.0.0.1", bready["port"], bready["hotkey"]))
        if a.floor:
            floor_bin = bin_dir / "examples/axon-floor"
            if not floor_bin.exists():
                sys.exit(f"soak cpu: --floor needs {floor_bin} "
                         "(cargo build --release -p akihabara-cli --example axon-floor)")
            for name, extra in FLOORS:
                f = Proc(name, [str(floor_bin), "--ip", "127.0.0.2", "--port", "0", *extra], work / f"{name}.log")
                procs[name] = f
                fready = f.wait_for(lambda v: v.get("event") == "ready", 60)
                # The yardstick checks no hotkey: the dendrite is given ours.
                targets.append((name, f.pid, "127.0.0.2", fready["port"], oready["hotkey"]))
        targets.append(("python", pyaxon.pid, "127.0.0.1", py_port, pyready["hotkey"]))
        for r in range(a.rounds):
            row = {}
            for name, pid, ip, port, hotkey in targets:
                load = Proc("load", [str(BT_PY), __file__, "load", "--wallet-path", str(wallets), "--wallet-name", "v2",
                                     "--ip", ip, "--port", str(port), "--axon-hotkey", hotkey,
                                     "--concurrency", str(a.concurrency)], work / f"load-{name}-{r}.log", stdin=True)
                procs["load"] = load
                load.wait_for(lambda v: v.get("event") == "ready", 120)
                time.sleep(3)
                row[name] = w = cpu_window(pid, None, load, a.window)
                w["statuses"] = (load.last(lambda v: "calls" in v) or {}).get("status")
                load.close_stdin()
                load.p.wait(60)
                del procs["load"]
            row["ratio"] = round(row["python"]["cpu_ms_per_call"] / max(row["akihabara"]["cpu_ms_per_call"], 1e-9), 1)
            b = ""
            if "akihabara-b" in row:
                row["ratio_b"] = round(row["python"]["cpu_ms_per_call"] / max(row["akihabara-b"]["cpu_ms_per_call"], 1e-9), 1)
                b = f", b {row['akihabara-b']['cpu_ms_per_call']} ms/call ({row['akihabara-b']['calls_per_s']}/s, {row['ratio_b']}x)"
            for name, _ in FLOORS:
                if name in row:
                    row[f"ratio_{name}"] = round(row["python"]["cpu_ms_per_call"] / max(row[name]["cpu_ms_per_call"], 1e-9), 1)
                    b += f", {name} {row[name]['cpu_ms_per_call']} ms/call ({row[name]['calls_per_s']}/s, {row[f'ratio_{name}']}x)"
            log(f"round {r + 1}: ours {row['akihabara']['cpu_ms_per_call']} ms/call "
                f"({row['akihabara']['calls_per_s']}/s){b}, python {row['python']['cpu_ms_per_call']} ms/call "
                f"({row['python']['calls_per_s']}/s): {row['ratio']}x")
            result["rounds"].append(row)
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        result["median"] = {"akihabara_ms": med([r["akihabara"]["cpu_ms_per_call"] for r in result["rounds"]]),
                            "python_ms": med([r["python"]["cpu_ms_per_call"] for r in result["rounds"]]),
                            "ratio": med([r["ratio"] for r in result["rounds"]])}
        for name, _ in FLOORS:
            if a.floor:
                result["median"][f"{name}_ms"] = med([r[name]["cpu_ms_per_call"] for r in result["rounds"]])
                result["median"][f"ratio_{name}"] = med([r[f"ratio_{name}"] for r in result["rounds"]])
        if a.env_b or a.bin_b:
            result["median"]["akihabara_b_ms"] = med([r["akihabara-b"]["cpu_ms_per_call"] for r in result["rounds"]])
            result["median"]["ratio_b"] = med([r["ratio_b"] for r in result["rounds"]])
        log(f"median: {json.dumps(result['median'])}")
    finally:
        if "load" in procs:
            procs["load"].close_stdin()
        for p in reversed(list(procs.values())):
            p.stop()
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def machine():
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "kernel": os.uname().release}


def table(r):
    p = r.get("processes", {})
    print("\n| measure | value |\n|---|---|")
    rows = [("machine", f"{r['machine']['cpu']}, {r['machine']['cores']} cores, load average at start "
             f"{' '.join(f'{x:.1f}' for x in r['load_average_at_start'])}"),
            ("soak", f"{r['minutes']} min, Python dendrite concurrency {r['concurrency']}, chain: {r['chain']}")]
    for who in ("miner", "validator"):
        i, s, e, f = (p.get(k, {}).get(who) for k in ("before_clients", "start", "end", "after_clients"))
        if i and s and e and f:
            rows.append((f"{who} RSS: no clients, soak start, soak end, clients gone",
                         f"{i['rss_mib']}, {s['rss_mib']}, {e['rss_mib']}, {f['rss_mib']} MiB"))
            rows.append((f"{who} open fds: same four points", f"{i['fds']}, {s['fds']}, {e['fds']}, {f['fds']}"))
    vr = r.get("validator_fds_after_resume")
    if vr:
        rows.append(("validator open fds after the pause", f"{vr['at_resume']} at SIGCONT, peak {vr['peak_10s']} "
                     f"in the next 10 s, {vr['at_10s']} at 10 s"))
    k = r.get("miner_kill")
    if k:
        b = k["miner_before_kill"]
        rows.append(("miner kill -9", f"at {k['at_s']} s (RSS {b['rss_mib']} MiB, {b['fds']} fds before); "
                     f"ready again after {k['ready_again_after_s']} s, /health 200 after {k['healthy_again_after_s']} s"))
    c = r.get("chain_restart")
    if c:
        rows.append(("chain restart", f"at {c['at_s']} s, head {c['head_before']} → {c['head_after_setup']} (set up again), "
                     f"continued at {c['head_continued_at']}; down "
                     f"{c['down_s']} s (setup {c['setup_s']} s); daemons {json.dumps(c['daemons'])}"))
    rows.append(("miner requests by status (/metrics, both miner processes)", json.dumps(r.get("miner_requests_by_status"))))
    d = r.get("python_dendrite_on_miner") or {}
    rows.append(("Python dendrite calls to the miner (client-side status)", f"{d.get('calls')} {json.dumps(d.get('statuses'))}, mean {d.get('mean_ms')} ms"))
    j = r.get("jobs")
    if j:
        rows.append(("jobs submitted / accepted / finished", f"{j['submitted']} / {j['accepted']} / {j['finished']}"))
        rows.append(("job ends", json.dumps(j["ended"])))
        rows.append(("receipts, miner / validator side", f"{j['receipts_miner']} / {j['receipts_validator']}"))
        rows.append(("lost receipts", str(j["lost_receipts"])))
    v = r.get("validator")
    if v:
        rows.append(("validator rounds (after the chain restart)", f"{v['rounds']} ({v['rounds_after_chain_restart']}); "
                     f"weights set {v['weights_set']} ({v['weights_after_chain_restart']}); challenges of uid 2 {json.dumps(v['challenges_of_our_miner_uid2'])}"))
    if "miner_idle_cpu_per_s" in r:
        rows.append(("miner CPU with no clients (validator rounds running)", f"{1e3 * r['miner_idle_cpu_per_s']:.1f} ms per s"))
    if "miner_background_cpu_per_s_validator_paused" in r:
        bg = r["miner_background_cpu_per_s_validator_paused"]
        share = ""
        w = r.get("ours_window") or {}
        if w.get("calls_per_s"):
            share = f", {1e6 * bg / w['calls_per_s']:.1f} µs of each call in the CPU window"
        # CPU time comes in clock ticks (10 ms): over 10 s, 1 ms per second.
        what = f"{1e3 * bg:.1f} ms per s{share}" if bg > 0 else "under 1 ms per s (no 10 ms clock tick in 10 s)"
        rows.append(("miner CPU with no clients, validator paused (as in the CPU window)", what))
    for key, name in (("ours_soak_window", "akihabara miner, under the whole soak"),
                      ("ours_window", "akihabara miner axon"), ("python_window", "bittensor 10.5.0 bt.Axon")):
        w = r.get(key)
        if w:
            rows.append((f"{name}: CPU per call", f"{w['cpu_ms_per_call']} ms ({w['cpu_s']} s CPU / {w['calls']} calls "
                         f"in {w['seconds']} s, {w['calls_per_s']}/s)"))
    if "cpu_per_call_ratio" in r:
        rows.append(("CPU per call, Python axon / akihabara axon", f"{r['cpu_per_call_ratio']}x (target 100x)"))
    if "cpu_per_call_ratio_under_whole_soak" in r:
        rows.append(("the same, akihabara measured under the whole soak", f"{r['cpu_per_call_ratio_under_whole_soak']}x"))
    if r.get("failures"):
        rows.append(("FAILURES", "; ".join(r["failures"])))
    for k2, val in rows:
        print(f"| {k2} | {val} |")

if __name__ == "__main__":
    sys.exit(main())
