#!/usr/bin/env python3
"""Writes the soak's results.md from its work directory: each traffic stream's requests and
statuses, and authgate's memory and descriptors over the run.
Usage: report.py WORKDIR MINUTES RATE RELOADS APPLIED REFUSED OUTAGE_FROM OUTAGE_TO"""
import csv
import json
import platform
import subprocess
import sys

work, minutes, rate, reloads, applied, refused, outage_from, outage_to = sys.argv[1:9]


def oha(name):
    with open(f"{work}/{name}.json") as f:
        report = json.load(f)
    statuses = {str(k): v for k, v in report.get("statusCodeDistribution", {}).items()}
    # oha cancels the requests in flight when its own run time is up: that is the client
    # stopping, not a failure of the gateway.
    errors = {k: v for k, v in report.get("errorDistribution", {}).items()
              if k != "aborted due to deadline"}
    return statuses, errors


failures = 0
rows = []
for name, label in [("public", "public route"), ("session", "signed-in route (session cookie)"),
                    ("bearer", "bearer route (one token, cached)")]:
    statuses, errors = oha(name)
    rows.append((label, statuses, errors))
with open(f"{work}/distinct.json") as f:
    distinct = json.load(f)
d_statuses = {k: v for k, v in distinct["statuses"].items() if not k.startswith("error")}
d_errors = {k: v for k, v in distinct["statuses"].items() if k.startswith("error")}
rows.append(("bearer route (a distinct token each, 20/s)", d_statuses, d_errors))

samples = list(csv.DictReader(open(f"{work}/samples.csv")))
rss = [int(s["rss_kib"]) for s in samples]
fds = [int(s["fds"]) for s in samples]
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                     capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()

print("# Soak results\n")
print(f"Machine: {cpu}, {cores} cores, {platform.system()} {platform.release()}. "
      f"Command: `benches/soak/run.sh --minutes {minutes}`.\n")
print(f"{minutes} minutes; open-loop streams of {rate} requests/s on each oha route; "
      f"{reloads} config changes with SIGHUP ({applied} applied, {refused} refused); the "
      f"identity provider and the JWKS server stopped from second {outage_from} to "
      f"second {outage_to}.\n")
print("Requests oha cancels itself when its run time is up are not counted.\n")
print("| stream | requests | 2xx | other statuses | transport errors |")
print("|---|---:|---:|---|---|")
for label, statuses, errors in rows:
    total = sum(statuses.values()) + sum(errors.values())
    ok = sum(v for k, v in statuses.items() if k.startswith("2"))
    other = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()) if not k.startswith("2"))
    errs = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
    failures += total - ok
    print(f"| {label} | {total} | {ok} | {other or '0'} | {errs or '0'} |")
print()
print("| authgate | first sample | min | max | last sample |")
print("|---|---:|---:|---:|---:|")
print(f"| RSS (MiB) | {rss[0] / 1024:.1f} | {min(rss) / 1024:.1f} | {max(rss) / 1024:.1f} | "
      f"{rss[-1] / 1024:.1f} |")
print(f"| open descriptors | {fds[0]} | {min(fds)} | {max(fds)} | {fds[-1]} |")
print()
print("Samples every 5 s (second, RSS KiB, descriptors, event):\n")
print("```")
for s in samples:
    print(f"{s['second']:>5} {s['rss_kib']:>8} {s['fds']:>5}  {s['event']}")
print("```")

# A failed request fails the run (and CI's smoke run of it).
sys.exit(1 if failures else 0)
