#!/usr/bin/env python3
"""test/bench/flood.py -- refused connection attempts, as fast as asked.

    flood.py HOST PORT ROLE ATTEMPTS SECONDS PROCESSES [DATABASE]

Opens ATTEMPTS plaintext TCP connections to a PostgreSQL server, spread
evenly over SECONDS (or as fast as the server answers, if it cannot keep
up), from PROCESSES processes.  Each one sends a protocol 3.0 startup
packet for ROLE (no SSLRequest) and reads the answer until the server
closes.  Prints one JSON object: attempts, seconds, and the answers counted
by kind -- "E:<SQLSTATE>" for an ErrorResponse, "auth" for an
authentication request (the server let the attempt go on), "refused" when
the TCP connection itself was refused, "error" for anything else.

Python 3 standard library only; the benchmark scripts (test/bench/events.sh)
run it.
"""
import json
import multiprocessing
import socket
import struct
import sys
import time


def startup_packet(role, database):
    body = struct.pack("!I", 196608)
    for k, v in (("user", role), ("database", database)):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def attempt(host, port, packet):
    try:
        s = socket.create_connection((host, port), timeout=30)
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "error"
    try:
        s.sendall(packet)
        data = b""
        while True:
            chunk = s.recv(8192)
            if not chunk:
                break
            data += chunk
            if data[:1] == b"R":
                return "auth"
        if data[:1] == b"E" and len(data) >= 5:
            (length,) = struct.unpack("!I", data[1:5])
            for field in data[5:1 + length].split(b"\0"):
                if field[:1] == b"C":
                    return "E:" + field[1:].decode()
            return "E:?"
        return "error"
    except OSError:
        return "error"
    finally:
        s.close()


def worker(args):
    host, port, role, database, n, seconds, start = args
    packet = startup_packet(role, database)
    counts = {}
    interval = seconds / n if n else 0
    for i in range(n):
        due = start + i * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        kind = attempt(host, port, packet)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def main():
    host, port, role, attempts, seconds, procs = sys.argv[1:7]
    database = sys.argv[7] if len(sys.argv) > 7 else "postgres"
    port, attempts, procs, seconds = int(port), int(attempts), int(procs), float(seconds)
    shares = [attempts // procs + (1 if i < attempts % procs else 0) for i in range(procs)]
    start = time.monotonic() + 0.2
    with multiprocessing.Pool(procs) as pool:
        results = pool.map(worker, [(host, port, role, database, n, seconds, start) for n in shares])
    elapsed = time.monotonic() - start
    total = {}
    for r in results:
        for k, v in r.items():
            total[k] = total.get(k, 0) + v
    print(json.dumps({"attempts": attempts, "seconds": round(elapsed, 3), "answers": total}))


if __name__ == "__main__":
    main()
