#!/usr/bin/env python3
"""Opens N connections to a gateway that each send half a request head and then wait, samples
the gateway's RSS and descriptors, lets them go, and samples again before and after 2,000
ordinary requests. Usage: slow_clients.py PORT N GATEWAY_PID (raise `ulimit -n` first)."""
import asyncio
import os
import sys
import urllib.request

port, n, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


def sample(label):
    rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    print(f"{label}: RSS {rss // 1024} MiB, {fds} descriptors", flush=True)


async def main():
    sample("before")
    conns = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
        conns.append((reader, writer))
    await asyncio.sleep(2)
    sample(f"with {n} slow clients")
    for _, writer in conns:
        writer.close()
    await asyncio.sleep(3)
    sample("3 s after they left")
    for _ in range(2000):
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": "a.test"})
            urllib.request.urlopen(req, timeout=2).read()
        except OSError:
            pass
    sample("after 2,000 more requests")


asyncio.run(main())
