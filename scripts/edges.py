#!/usr/bin/env python3
"""Reruns issue 14's attacks against a built cx-webhook on loopback and prints what it saw.

usage: scripts/edges.py [--bin PATH] [--flood PATH] [SCENARIO ...]

scenarios (default: all, in this order):
  silent   1,300 silent sockets kept open against a server at `ulimit -n 1024`, while a normal
           client makes a new-connection account.balance call every 20 ms for 12 s: how many of
           its calls were answered, their p99, the server's accept errors and open descriptors.
  booking  WEBHOOK_DEADLINE_MS=150 and the SQLite file locked by another process for 1 s while
           four callers book: what they heard, how many bookings exist after the lock is gone
           (none may exist for a caller told "try again"), then each caller's next turn in the
           same session (a new detectIntentResponseId): confirmed once, never booked twice.
  flood    examples/flood: 7 rounds of 1,000 slowloris connections and 3 rounds of h2c stream
           floods; the server's resident memory after each round.

--bin defaults to target/release/cx-webhook, --flood to target/release/examples/flood (build them
with `cargo build --release --bin cx-webhook --example flood`). Every server is a fresh process on
127.0.0.1 with its own database file in a temporary directory. SIGTERM under load (issue 14, item 4)
is scripts/sigterm-load.sh.
"""

import argparse
import datetime
import http.client
import json
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zoneinfo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


class Server:
    """One cx-webhook process on 127.0.0.1:0 with JSON logs in a file."""

    def __init__(self, binary, workdir, env=None, nofile=None):
        self.workdir = workdir
        self.db = os.path.join(workdir, "cx.db")
        self.log_path = os.path.join(workdir, "server.log")
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AUTH_MODE": "none",
            "ACCOUNT_ACCESS": "open",
            "BIND": "127.0.0.1",
            "PORT": "0",
            "LOG_FORMAT": "json",
            "RUST_LOG": "info",
            "DATABASE_PATH": self.db,
        }
        full_env.update(env or {})

        def limits():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "serve"], env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=limits)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for line in self.lines():
                if line.get("message") == "listening":
                    host, port = line["address"].rsplit(":", 1)
                    self.addr = (host, int(port))
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        sys.exit("the server did not start:\n" + open(self.log_path).read())

    def lines(self):
        out = []
        with open(self.log_path) as f:
            for raw in f:
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    pass
        return out

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def post(addr, body, timeout=5.0):
    """POSTs `body` to /webhook on a new connection: (status, parsed JSON or None, seconds)."""
    start = time.monotonic()
    conn = http.client.HTTPConnection(*addr, timeout=timeout)
    try:
        conn.request("POST", "/webhook", body, {"content-type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data), time.monotonic() - start
    finally:
        conn.close()


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def p99(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")


def silent(args, workdir):
    # The attacker refills what the server closes, so the count hovers just under 1,300.
    server = Server(args.bin, workdir, nofile=1024)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    body = fixture("account-balance.json")
    stop = threading.Event()
    held, reopened, peak_fds = [], [0], [0]

    def hold():
        # Keeps 1,300 connected sockets that never send a byte; replaces each one the server closes.
        while not stop.is_set():
            while len(held) < 1300 and not stop.is_set():
                s = socket.socket()
                s.settimeout(2)
                try:
                    s.connect(server.addr)
                    s.setblocking(False)
                    held.append(s)
                except OSError:
                    s.close()
                    time.sleep(0.01)
            for s in list(held):
                try:
                    if s.recv(1) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    continue
                except OSError:
                    held.remove(s)
                    s.close()
                    reopened[0] += 1
            peak_fds[0] = max(peak_fds[0], server.open_fds())
            time.sleep(0.05)

    holder = threading.Thread(target=hold)
    holder.start()
    filled_by = time.monotonic() + 60
    while len(held) < 1300 and time.monotonic() < filled_by:
        time.sleep(0.05)
    at_start = len(held)
    ok, failed, latencies = 0, 0, []
    end = time.monotonic() + 12
    while time.monotonic() < end:
        try:
            status, answer, secs = post(server.addr, body, timeout=3)
            good = status == 200 and "fulfillmentResponse" in answer
        except (OSError, ValueError, http.client.HTTPException):
            good, secs = False, 3.0
        ok, failed = ok + good, failed + (not good)
        latencies.append(secs)
        time.sleep(0.02)
    stop.set()
    holder.join()
    for s in held:
        s.close()
    accept_errors = sum("open files" in json.dumps(line) for line in server.lines())
    print(f"silent: normal client {ok}/{ok + failed} answered, p99 {p99(latencies) * 1000:.1f} ms; "
          f"{at_start} silent sockets open when it began, {reopened[0]} closed by the server and reopened; "
          f"server fds peak {peak_fds[0]} (limit 1024); accept errors logged {accept_errors}; "
          f"RSS {server.rss_kib()} KiB")
    server.stop()


def open_days(n):
    """The next `n` days (from tomorrow, Asia/Kolkata) that D-PUN-01 is open: Monday to Saturday."""
    day = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Kolkata")).date()
    out = []
    while len(out) < n:
        day += datetime.timedelta(days=1)
        if day.weekday() != 6:
            out.append(day)
    return out


def booking_body(vehicle, session, rid, day, hour):
    with open(os.path.join(ROOT, "scripts", "booking-create.template.json")) as f:
        text = f.read()
    for key, value in {"__VEHICLE__": vehicle, "__RID__": rid, "__Y__": day.year,
                       "__M__": day.month, "__D__": day.day, "__HH__": hour, "__MM__": 0}.items():
        text = text.replace(key, str(value))
    return text.replace("sessions/s-4f9e2b", f"sessions/{session}").encode()


def heard(status, answer):
    if status != 200:
        return f"HTTP {status}"
    params = (answer.get("sessionInfo") or {}).get("parameters") or {}
    if params.get("booking_status") == "confirmed":
        return "confirmed"
    text = json.dumps(answer.get("fulfillmentResponse", {}))
    # The deadline's "taking longer than expected" or the store's "can't take bookings right now".
    return "try again" if "try again" in text.lower() else "other: " + text[:120]


def booking(args, workdir):
    server = Server(args.bin, workdir, env={"WEBHOOK_DEADLINE_MS": "150"})
    day = open_days(3)[-1]
    # One slot each (a slot holds a few bookings): a refusal can only come from the lock.
    callers = [(f"MH12EG{1000 + i}", f"edge-{i}", 10 + i) for i in range(4)]
    vehicles = [v for v, _, _ in callers]
    locked = threading.Event()

    def lock():
        db = sqlite3.connect(server.db, isolation_level=None, timeout=5)
        db.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(1.0)
        db.execute("ROLLBACK")
        db.close()

    locker = threading.Thread(target=lock)
    locker.start()
    locked.wait()
    first = [None] * len(callers)

    def call(i):
        vehicle, session, hour = callers[i]
        status, answer, _ = post(server.addr, booking_body(vehicle, session, f"{session}-1", day, hour))
        first[i] = heard(status, answer)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(callers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    locker.join()
    time.sleep(1.5)

    def rows():
        db = sqlite3.connect(server.db, timeout=5)
        marks = ",".join("?" * len(vehicles))
        count = db.execute(f"SELECT count(*) FROM bookings WHERE vehicle_number IN ({marks})",
                           vehicles).fetchone()[0]
        db.close()
        return count

    after_lock = rows()
    second = []
    for vehicle, session, hour in callers:
        status, answer, _ = post(server.addr, booking_body(vehicle, session, f"{session}-2", day, hour))
        second.append(heard(status, answer))
    told_retry = first.count("try again")
    print(f"booking: first turn heard {first}; bookings for them 1.5 s after the lock was released: "
          f"{after_lock} (callers told to try again: {told_retry}); next turn heard {second}; "
          f"bookings now {rows()} for {len(callers)} vehicles")
    server.stop()


def flood(args, workdir):
    server = Server(args.bin, workdir)
    out = subprocess.run([args.flood, f"{server.addr[0]}:{server.addr[1]}", str(server.proc.pid), "7", "3"],
                         capture_output=True, text=True, timeout=600)
    rows = [line for line in out.stdout.splitlines() if "KiB" in line]
    print("flood: " + "; ".join(rows))
    server.stop()


SCENARIOS = {"silent": silent, "booking": booking, "flood": flood}


def main():
    parser = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1])
    parser.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "cx-webhook"))
    parser.add_argument("--flood", default=os.path.join(ROOT, "target", "release", "examples", "flood"))
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    for name in args.scenarios:
        if name not in SCENARIOS:
            sys.exit(f"unknown scenario {name}; known: {', '.join(SCENARIOS)}")
    print(f"{args.bin}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for name in args.scenarios:
        with tempfile.TemporaryDirectory() as workdir:
            SCENARIOS[name](args, workdir)


if __name__ == "__main__":
    main()
