#!/usr/bin/env python3
"""Summarises the harness CSV: median per scenario over the rounds, ratios, and an SVG chart.
Usage: report.py results.csv RSS_IDLE_KB DURATION ROUNDS CONNECTIONS THREADS > results.md"""
import csv
import os
import platform
import statistics
import subprocess
import sys

path, rss_kb, duration, rounds, conns, threads = sys.argv[1:7]
rows = list(csv.DictReader(open(path)))
order = []
for r in rows:
    if r["scenario"] not in order:
        order.append(r["scenario"])


def median(name, field):
    values = [float(r[field]) for r in rows if r["scenario"] == name and r[field] != ""]
    return statistics.median(values) if values else None


rps = {n: median(n, "rps") for n in order}
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print("# authgate load harness results\n")
print(f"- Machine: {os.cpu_count()} CPU ({cpu_model}), Linux {platform.release()}, loopback.")
print(f"- Command: `benches/load/run.sh` — {rounds} interleaved round(s) of {duration} per scenario, "
      f"wrk {threads} threads / {conns} connections; authgate 2 worker threads, nginx 2 workers.")
print(f"- authgate idle RSS: {int(rss_kb) / 1024:.1f} MiB.\n")
print("| scenario | median req/s | × nginx | p50 ms | p99 ms | gateway CPU µs/req | non-2xx |")
print("|---|---|---|---|---|---|---|")
for n in order:
    ratio = f"{rps[n] / rps['nginx']:.2f}" if rps.get("nginx") else ""
    cpu = median(n, "gateway_cpu_us_per_request")
    non2xx = int(sum(int(r["non2xx"]) for r in rows if r["scenario"] == n))
    print(f"| {n} | {rps[n]:.0f} | {ratio} | {median(n, 'p50_ms'):.2f} | {median(n, 'p99_ms'):.2f} | "
          f"{'' if cpu is None else f'{cpu:.1f}'} | {non2xx} |")
public = rps.get("authgate-public")
if public:
    print("\nRatios to authgate's public route: " + ", ".join(
        f"{n.removeprefix('authgate-')} {rps[n] / public:.2f}×" for n in order if n.startswith("authgate-") and n != "authgate-public") + ".")
print("\nLatencies are wrk's closed-loop figures at full load, not at a fixed open-loop rate.")

# The chart: one bar per scenario, median req/s.
width, bar_h, gap, left = 720, 26, 10, 190
height = len(order) * (bar_h + gap) + 40
top = max(rps.values())
bars = []
for i, n in enumerate(order):
    y = 20 + i * (bar_h + gap)
    w = (width - left - 90) * rps[n] / top
    colour = "#3b7dd8" if n.startswith("authgate") else "#9a9a9a"
    bars.append(f'<text x="{left - 8}" y="{y + 18}" text-anchor="end" font-size="13">{n}</text>'
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>'
                f'<text x="{left + w + 6:.1f}" y="{y + 18}" font-size="12">{rps[n]:.0f}</text>')
svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">'
       f'<rect width="100%" height="100%" fill="white"/>{"".join(bars)}'
       f'<text x="{left}" y="{height - 8}" font-size="12">median requests/second (higher is better)</text></svg>')
open(os.path.join(os.path.dirname(__file__), "results.svg"), "w").write(svg)
