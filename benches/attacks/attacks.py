#!/usr/bin/env python3
"""Replays every attack of issue 11 against a release `nestor serve` on
127.0.0.1 and prints, per attack, the answer (status and code), its time,
the server's RSS before and after, and whether /health kept answering
meanwhile. Not part of CI (it builds and runs a release binary).

Run with: cargo build --release -p nestor-server && python3 benches/attacks/attacks.py
(`NESTOR_BIN` overrides the binary.)
"""

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("NESTOR_BIN", os.path.join(ROOT, "target", "release", "nestor"))
TOKENS = {"admin": "admin", "alpha": "team:alpha", "beta": "team:beta", "reader": "reader"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nestor-attacks-")
        self.port = free_port()
        tokens = "\n".join(
            f"    - {{name: {n}, sha256: \"{hashlib.sha256(n.encode()).hexdigest()}\", roles: [\"{r}\"]}}"
            for n, r in TOKENS.items()
        )
        config = os.path.join(self.dir, "nestor.yaml")
        with open(config, "w") as f:
            f.write(
                f"server:\n  listen: 127.0.0.1:{self.port}\n  header_read_timeout: 2s\n"
                f"  idle_timeout: 5s\n  body_read_timeout: 2s\n  max_connections: 1024\n"
                f"storage:\n  type: memory\ngitops:\n  repo: {self.dir}/gitops\n"
                f"auth:\n  anonymous_read: true\n  tokens:\n{tokens}\n"
            )
        self.proc = subprocess.Popen(
            [BIN, "--config", config, "--data-dir", self.dir, "serve",
             "--catalog", os.path.join(ROOT, "examples", "catalog")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.request("GET", "/health", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("the server did not start")

    def request(self, method, path, body=None, token=None, headers=None, timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if token:
            h["authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("content-type", "application/json")
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        try:
            code = json.loads(data)["error"]["code"]
        except Exception:
            code = "-"
        return resp.status, code, len(data)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Neighbour(threading.Thread):
    """A well-behaved client asking /health every 20 ms."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.stop, self.answers, self.slowest, self.failures = server, False, 0, 0.0, 0

    def run(self):
        while not self.stop:
            started = time.time()
            try:
                ok = self.server.request("GET", "/health", timeout=10)[0] == 200
            except OSError:
                ok = False
            self.slowest = max(self.slowest, time.time() - started)
            self.answers += ok
            self.failures += not ok
            time.sleep(0.02)


def raw(server, data, wait=10.0, trickle=None):
    """Sends raw bytes (then trickles `trickle` a byte every 100 ms) and
    returns the status line's status and code."""
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(wait)
    s.sendall(data)
    try:
        if trickle:
            for b in trickle:
                s.sendall(bytes([b]))
                time.sleep(0.1)
        got = s.recv(65536)
    except OSError:
        got = b""
    finally:
        s.close()
    text = got.decode(errors="replace")
    status = text.split(" ")[1] if text.startswith("HTTP/") else "closed"
    code = text.split('"code":"')[1].split('"')[0] if '"code":"' in text else "-"
    return int(status) if status.isdigit() else status, code, len(got)


def attacks(server):
    deep = ("{a: " * 50_000 + "1" + "}" * 50_000).encode()
    deep_1m = ("{a: " * 200_000 + "1" + "}" * 200_000).encode()
    labels = {f"l{i}": "{{ 'x' * 5000000 }}" for i in range(200)}
    amplify = {"team": "alpha", "environment": "dev", "name": "amp", "resources": [
        {"name": "topic", "catalog_ref": "gcp-pubsub-topic:1.0.0", "engine": "terraform",
         "config": {"project_id": "proj-12345", "topic": "topic-one", "labels": labels}}]}
    yaml = {"content-type": "application/yaml"}

    def idle_flood():
        socks = []
        for _ in range(5000):
            try:
                socks.append(socket.create_connection(("127.0.0.1", server.port)))
            except OSError:
                break
        status = server.request("GET", "/health")
        time.sleep(2.5)
        closed = 0
        for s in socks:
            s.settimeout(0.05)
            try:
                closed += s.recv(1) == b""
            except socket.timeout:
                pass
            except OSError:
                closed += 1
            s.close()
        return status[0], f"{closed}/{len(socks)} closed", 0

    def methods():
        for i in range(1000):
            raw(server, f"X{i}{'M' * 50_000} /api/v1/resources HTTP/1.1\r\nhost: x\r\n\r\n".encode(), wait=5)
        status, _, size = server.request("GET", "/metrics")
        return status, f"/metrics {size} B", size

    return [
        ("1. deep YAML 250 KB, anonymous validate", lambda: server.request("POST", "/api/v1/validate", deep, headers=yaml)),
        ("1. deep YAML 1 MB, anonymous validate", lambda: server.request("POST", "/api/v1/validate", deep_1m, headers=yaml)),
        ("2. 200 x 'x'*5e6 templates, plan", lambda: server.request("POST", "/api/v1/plan", amplify, token="alpha")),
        ("3. anonymous deployments, body never sent", lambda: raw(server, b"POST /api/v1/deployments HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n\r\n{")),
        ("4. half-sent headers", lambda: raw(server, b"GET /health HTTP/1.1\r\nhost: x\r\n")),
        ("4. trickling body", lambda: raw(server, b"POST /api/v1/validate HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n", trickle=b"[" + b" " * 60)),
        ("4. 5,000 idle sockets", idle_flood),
        ("5. 1,000 requests with 50 KB methods", methods),
        ("6. search with 1,000 words", lambda: server.request("GET", "/api/v1/search?q=" + "+".join(["database"] * 1000))),
        ("7. 900 KB invalid value", lambda: server.request("POST", "/api/v1/plan", {"team": "alpha", "environment": "dev", "name": "x", "resources": [{"name": "t", "catalog_ref": "gcp-pubsub-topic:1.0.0", "engine": "terraform", "config": {"project_id": "P" * 900_000, "topic": "topic-one"}}]}, token="alpha")),
        ("8. another team's deployment id", lambda: server.request("GET", "/api/v1/deployments/beta.dev.x.r1", token="alpha")),
        ("9. Last-Event-ID beyond the end", lambda: server.request("GET", "/api/v1/events", headers={"last-event-id": "99999999"})),
        ("9. garbage cursor", lambda: server.request("GET", "/api/v1/resources?cursor=%25%25garbage")),
        ("10.18 unknown route", lambda: server.request("GET", "/api/v1/nothing")),
        ("10.18 headers over 16 KiB", lambda: server.request("GET", "/health", headers={"x-filler": "f" * 20_000})),
    ]


def main():
    server = Server()
    print(f"{'attack':48} {'answer':>26} {'time':>9} {'RSS before':>11} {'RSS after':>10}  neighbour")
    try:
        for name, attack in attacks(server):
            neighbour = Neighbour(server)
            neighbour.start()
            before = rss_kib(server.proc.pid)
            started = time.time()
            try:
                status, code, _ = attack()
            except Exception as e:  # an attack the server cut off
                status, code = "error", type(e).__name__
            took = time.time() - started
            time.sleep(0.3)
            after = rss_kib(server.proc.pid)
            neighbour.stop = True
            neighbour.join()
            answer = f"{status} {code}"
            print(f"{name:48} {answer:>26} {took * 1000:>7.0f}ms {before / 1024:>9.1f}MB {after / 1024:>8.1f}MB"
                  f"  {neighbour.answers} ok, {neighbour.failures} failed, slowest {neighbour.slowest * 1000:.0f} ms")
            sys.stdout.flush()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
