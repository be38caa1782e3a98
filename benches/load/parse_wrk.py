#!/usr/bin/env python3
"""Turns one wrk --latency output (stdin) into a CSV row:
round,scenario,rps,p50_ms,p99_ms,requests,server_cpu_us_per_request,non2xx
Usage: parse_wrk.py ROUND SCENARIO CPU_TICKS_BEFORE CPU_TICKS_AFTER CLK_TCK SERVER_PIDS
(the server's CPU per request is left empty when no server process was named)."""
import re
import sys

round_, name, before, after, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
servers = sys.argv[6] if len(sys.argv) > 6 else ""
text = sys.stdin.read()


def ms(value):
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
requests = int(re.search(r"(\d+) requests in", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
non2xx = int(non2xx.group(1)) if non2xx else 0
cpu = ""
if servers and requests:
    cpu = f"{(after - before) / hz * 1e6 / requests:.2f}"
print(f"{round_},{name},{rps:.0f},{p50:.3f},{p99:.3f},{requests},{cpu},{non2xx}")
