"""The load generator's ceiling against Locust's FastHttpUser, same target, same run.

Starts a trivial loopback target (nginx answering ``return 200`` from one
worker, when nginx is installed; otherwise a minimal asyncio server in its own
process, reported as such), then for each generator, one process each, one
after the other, for ``--seconds``:

* ``simrouter live``: a closed workload of ``--users`` users, no think time,
  no limiter, no breaker (a subprocess: the real command);
* Locust ``FastHttpUser`` (``locust --headless``, one process, ``--users``
  users, no wait time) posting the same body to the same URL;
* for reference, ``simrouter live --client aiohttp`` (the same generator on
  aiohttp's client instead of its lean HTTP/1.1 one).

It prints requests per second for each and their ratio (goal: simrouter >= 1.5 x
Locust), and with ``--json PATH`` writes them. Each generator runs
``--rounds`` times, alternating, and the median round is reported (the machine
may be shared). Locust is an optional dependency: ``pip install -e '.[bench]'``.

    python benchmarks/bench_loadgen.py --seconds 10 --users 64
"""

from __future__ import annotations

import argparse
import importlib.util
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import loopback_nginx

LOCUSTFILE = """
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

BODY = b'{"user": 0}'
HEADERS = {"Content-Type": "application/json"}


class Submit(FastHttpUser):
    wait_time = constant(0)

    @task
    def submit(self):
        self.client.post("/submit", data=BODY, headers=HEADERS)
"""

# A fallback target when nginx is missing: keep-alive HTTP/1.1, fixed answer.
PY_TARGET = r"""
import asyncio, sys
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0: return
            head = self.buf[:end].lower(); length = 0
            i = head.find(b"content-length:")
            if i >= 0: length = int(head[i + 15:].split(b"\r\n", 1)[0])
            if len(self.buf) < end + 4 + length: return
            self.buf = self.buf[end + 4 + length:]
            self.t.write(ANSWER)
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    async with server: await server.serve_forever()
asyncio.run(main())
"""


def start_target(folder: Path) -> tuple[subprocess.Popen, str, str]:
    if loopback_nginx.nginx_binary():
        process, url = loopback_nginx.start_nginx(folder, "return 200 '{}';")
        return process, url, "nginx return 200 (1 worker)"
    port = loopback_nginx.free_port()
    process = subprocess.Popen([sys.executable, "-c", PY_TARGET, str(port)])
    loopback_nginx.wait_for_port(port)
    return process, f"http://127.0.0.1:{port}", "python asyncio fixed-answer server (nginx not installed: this target may be the bottleneck)"


def run_simrouter(url: str, users: int, seconds: float, folder: Path, client: str = "fast") -> float:
    out = folder / "live.json"
    command = [
        sys.executable, "-m", "simrouter", "live", "concurrent", "--target", url, "--client", client,
        "--set", f"workload.users={users}", "--set", "workload.requests_per_user=1000000",
        "--set", f"duration={seconds}", "--set", "limiter.algorithm=none", "--set", "breaker.preset=none",
        "--json", str(out),
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    requests = data["requests"]
    assert requests["succeeded"] == requests["sent"], requests
    return requests["sent"] / seconds


def run_locust(url: str, users: int, seconds: float, folder: Path) -> float:
    locustfile = folder / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = folder / "locust"
    command = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
        "-u", str(users), "-r", str(users), "-t", f"{int(seconds)}s", "--host", url, "--csv", str(prefix),
        "--loglevel", "ERROR",
    ]
    # Locust exits 1 when any request failed; the failure count is checked below instead.
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(f"{prefix}_stats.csv") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    assert int(row["Failure Count"]) == 0, row
    return float(row["Requests/s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    # Not imported here: importing locust monkey-patches this process with gevent.
    if importlib.util.find_spec("locust") is None:
        print("locust is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp:
        folder = Path(tmp)
        target, url, kind = start_target(folder)
        try:
            ours, theirs, ours_aiohttp = [], [], []
            for _ in range(args.rounds):
                ours.append(run_simrouter(url, args.users, args.seconds, folder))
                theirs.append(run_locust(url, args.users, args.seconds, folder))
                ours_aiohttp.append(run_simrouter(url, args.users, args.seconds, folder, client="aiohttp"))
        finally:
            target.send_signal(signal.SIGTERM)
            target.wait(10)
    simrouter_rps, locust_rps = statistics.median(ours), statistics.median(theirs)
    ratio = simrouter_rps / locust_rps
    print(f"target: {kind}; {args.users} users, {args.seconds:g} s, median of {args.rounds} rounds, {os.cpu_count()} cores")
    print(f"  simrouter live       {simrouter_rps:10,.0f} req/s   rounds: {', '.join(f'{r:,.0f}' for r in ours)}")
    print(f"  locust FastHttpUser  {locust_rps:10,.0f} req/s   rounds: {', '.join(f'{r:,.0f}' for r in theirs)}")
    aiohttp_rps = statistics.median(ours_aiohttp)
    print(f"  (simrouter live --client aiohttp {aiohttp_rps:,.0f} req/s, {aiohttp_rps / locust_rps:.2f} x Locust)")
    print(f"  ratio {ratio:.2f} (goal >= 1.5): {'met' if ratio >= 1.5 else 'NOT met'}")
    if args.json:
        figures = {"simrouter_rps": ours, "simrouter_aiohttp_rps": ours_aiohttp, "locust_rps": theirs, "ratio": ratio}
        args.json.write_text(json.dumps({"target": kind, "users": args.users, "seconds": args.seconds, **figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
