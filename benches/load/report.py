#!/usr/bin/env python3
"""Summarises one harness run: medians per scenario over the rounds, ratios to nginx and to the
matching Apache scenario, open-loop latencies, memory, the issue's targets, and an SVG chart.
Usage: report.py RESULTS_CSV OPEN_LOOP_CSV SVG_PATH RSS_IDLE_KB RSS_SESSIONS_BEFORE_KB
       RSS_SESSIONS_AFTER_KB SESSIONS DURATION ROUNDS CONNECTIONS THREADS MODE
       REDIS_USED_BEFORE REDIS_USED_AFTER REDIS_KEY_COUNTS > results.md"""
import csv
import os
import platform
import statistics
import sys

(path, open_loop_path, svg_path, rss_idle, rss_before, rss_after, sessions,
 duration, rounds, conns, threads, mode, redis_before, redis_after, redis_keys_path) = sys.argv[1:16]
redis_before, redis_after = int(redis_before), int(redis_after)
# `uniq -c` lines: count, kind of key (session, user, state).
redis_keys = {kind: int(n) for n, kind in (l.split() for l in open(redis_keys_path) if l.strip())}
rss_idle, rss_before, rss_after, sessions = int(rss_idle), int(rss_before), int(rss_after), int(sessions)
rows = list(csv.DictReader(open(path)))
order = list(dict.fromkeys(r["scenario"] for r in rows))
open_loop = list(csv.DictReader(open(open_loop_path)))


def median(name, field):
    values = [float(r[field]) for r in rows if r["scenario"] == name and r[field] != ""]
    return statistics.median(values) if values else None


rps = {n: median(n, "rps") for n in order}
cpu = {n: median(n, "server_cpu_us_per_request") for n in order}
apache_match = {"authgate-session": "apache-session", "authgate-jwt-repeated": "apache-jwt"}
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                  if l.startswith("model name")), "?")
command = "benches/load/run.sh" + (f" {mode}" if mode else "")

print("# authgate load harness results\n")
if mode == "--quick":
    print("**Smoke run** (debug build, one short round): it checks that the harness works; its "
          "figures are not measurements of authgate.\n")
print(f"- Machine: {os.cpu_count()} CPU ({cpu_model}), Linux {platform.release()}, loopback; "
      "load generator and servers share the CPUs.")
print(f"- Command: `{command}` — {rounds} interleaved round(s) of {duration} per scenario, "
      f"wrk {threads} threads / {conns} connections. nginx 2 workers, Apache 2 server processes "
      "(event MPM), authgate 2 worker threads.\n")
print("| scenario | median req/s | × nginx | × Apache | p50 ms | p99 ms | server CPU µs/req | non-2xx |")
print("|---|---|---|---|---|---|---|---|")
for n in order:
    vs_nginx = f"{rps[n] / rps['nginx']:.2f}" if rps.get("nginx") else ""
    match = apache_match.get(n)
    vs_apache = f"{rps[n] / rps[match]:.2f}" if match in rps else ""
    non2xx = sum(int(r["non2xx"]) for r in rows if r["scenario"] == n)
    c = "" if cpu[n] is None else f"{cpu[n]:.1f}"
    print(f"| {n} | {rps[n]:.0f} | {vs_nginx} | {vs_apache} | {median(n, 'p50_ms'):.2f} | "
          f"{median(n, 'p99_ms'):.2f} | {c} | {non2xx} |")
print("\nLatencies above are wrk's closed-loop figures at full load. Server CPU is the gateway's "
      "(or all Apache processes', or for the Redis scenarios the gateway's plus redis-server's) "
      "user + system time over the requests served; `direct` and `nginx` have none. The 401 "
      "scenario's non-2xx answers are the point of it. `authgate-session-redis` keeps its "
      "sessions in Redis with the near cache on; `-cold` has it off "
      "(`near_cache_entries: 0`), so every request reads Redis.")

print("\n## Open loop: latency at a fixed rate\n")
print("oha with coordinated-omission correction, at half of nginx's and half of "
      "authgate-public's median throughput above.\n")
print("| rate basis | rate req/s | scenario | achieved req/s | p50 ms | p99 ms | p99 over direct ms |")
print("|---|---|---|---|---|---|---|")
direct_p99 = {r["rate_basis"]: float(r["p99_ms"]) for r in open_loop if r["scenario"] == "direct"}
for r in (r for r in open_loop if r["rate_basis"] in direct_p99):
    added = float(r["p99_ms"]) - direct_p99.get(r["rate_basis"], 0.0)
    print(f"| half {r['rate_basis']} | {r['rate']} | {r['scenario']} | {float(r['achieved_rps']):.0f} | "
          f"{float(r['p50_ms']):.2f} | {float(r['p99_ms']):.2f} | "
          f"{'' if r['scenario'] == 'direct' else f'{added:.2f}'} |")

def redis_pair(basis):
    at = {r["scenario"]: r for r in open_loop if r["rate_basis"] == basis}
    return at.get("authgate-session-redis"), at.get("authgate-session-redis-cold")


def cold_minus_hot(basis):
    hot, cold = redis_pair(basis)
    return float(cold["p99_ms"]) - float(hot["p99_ms"]) if hot and cold else float("nan")


cold_over_hot = cold_minus_hot("authgate-session-redis")
redis_per_session = (redis_after - redis_before) / sessions if sessions else 0
print("\n## Sessions in Redis\n")
print("oha at fixed rates, a session held near (`authgate-session-redis`) against one read from "
      "Redis on every request (`-cold`): at half the Redis-backed session route's median "
      "throughput, and at half the cold route's.\n")
print("| rate basis | rate req/s | scenario | achieved req/s | p50 ms | p99 ms | cold p99 over hot ms |")
print("|---|---|---|---|---|---|---|")
for basis in ("authgate-session-redis", "authgate-session-redis-cold"):
    for r in redis_pair(basis):
        if r is None:
            continue
        extra = f"{cold_minus_hot(basis):.2f}" if r["scenario"].endswith("-cold") else ""
        print(f"| half {basis} | {r['rate']} | {r['scenario']} | {float(r['achieved_rps']):.0f} | "
              f"{float(r['p50_ms']):.2f} | {float(r['p99_ms']):.2f} | {extra} |")
kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(redis_keys.items()))
print(f"\n- Redis `used_memory` before and after {sessions:,} sign-ins through a Redis-backed "
      f"gateway: {redis_before / 2**20:.1f} MiB → {redis_after / 2**20:.1f} MiB, "
      f"**{redis_per_session:.0f} bytes per session**, counting everything a sign-in leaves: "
      f"keys under the gateway's prefix: {kinds} (`state` records are the sign-ins' used-once "
      "states, which expire after `login_timeout`; `user` is the per-user index).")

per_session = (rss_after - rss_before) * 1024 / sessions if sessions else 0
print("\n## Memory\n")
print(f"- authgate idle RSS (the harness gateway: one app, an OIDC provider and a JWT issuer; after start-up, before any request): "
      f"{rss_idle / 1024:.1f} MiB.")
print(f"- A gateway signed into {sessions:,} times (real sign-ins through authgate's development "
      f"provider): RSS {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after, "
      f"{per_session:.0f} bytes per session (sessions plus the bounded used-state list).")


def get(n):
    return rps.get(n) or 0.0


half_nginx = {r["scenario"]: float(r["p99_ms"]) for r in open_loop if r["rate_basis"] == "nginx"}
added_p99 = half_nginx.get("authgate-public", 0.0) - half_nginx.get("direct", 0.0)
checks = [
    ("public route ≥ 1.0× nginx", get("authgate-public") >= get("nginx"),
     f"{get('authgate-public') / get('nginx'):.2f}×"),
    ("session route ≥ 0.95× public", get("authgate-session") >= 0.95 * get("authgate-public"),
     f"{get('authgate-session') / get('authgate-public'):.2f}×"),
    ("repeated-JWT route ≥ 0.95× public", get("authgate-jwt-repeated") >= 0.95 * get("authgate-public"),
     f"{get('authgate-jwt-repeated') / get('authgate-public'):.2f}×"),
    ("session route ≥ 4× apache-session", get("authgate-session") >= 4 * get("apache-session"),
     f"{get('authgate-session') / get('apache-session'):.2f}×"),
    ("repeated-JWT route ≥ 4× apache-jwt", get("authgate-jwt-repeated") >= 4 * get("apache-jwt"),
     f"{get('authgate-jwt-repeated') / get('apache-jwt'):.2f}×"),
    ("distinct-token JWT ≥ 15,000 req/s", get("authgate-jwt-distinct") >= 15000,
     f"{get('authgate-jwt-distinct'):.0f} req/s"),
    ("a 401 costs no more CPU than a public request",
     (cpu.get("authgate-reject-401") or 0) <= (cpu.get("authgate-public") or 0),
     f"{cpu.get('authgate-reject-401') or 0:.1f} vs {cpu.get('authgate-public') or 0:.1f} µs"),
    ("p99 added over direct ≤ 1 ms at half nginx's rate", added_p99 <= 1.0, f"{added_p99:.2f} ms"),
    ("idle RSS ≤ 30 MB", rss_idle * 1024 <= 30e6, f"{rss_idle * 1024 / 1e6:.1f} MB"),
    ("≤ 1 KB per stored session", per_session <= 1024, f"{per_session:.0f} bytes"),
]
print("\n## Targets (issue 5)\n")
print("| target | result | measured |")
print("|---|---|---|")
for name, ok, value in checks:
    print(f"| {name} | {'met' if ok else '**missed**'} | {value} |")

redis_checks = [
    ("session route with Redis ≥ 0.9× the memory store's",
     get("authgate-session-redis") >= 0.9 * get("authgate-session"),
     f"{get('authgate-session-redis') / get('authgate-session'):.2f}×"),
    ("Redis memory ≤ 1.5 KB per session", redis_per_session <= 1536, f"{redis_per_session:.0f} bytes"),
    ("cold session p99 ≤ 1 ms over a hot one at half the (hot) session route's max rate",
     cold_over_hot <= 1.0, f"{cold_over_hot:.2f} ms"),
    ("the same at half the cold route's max rate", cold_minus_hot("authgate-session-redis-cold") <= 1.0,
     f"{cold_minus_hot('authgate-session-redis-cold'):.2f} ms"),
]
print("\n## Targets (issue 11: sessions in Redis)\n")
print("| target | result | measured |")
print("|---|---|---|")
for name, ok, value in redis_checks:
    print(f"| {name} | {'met' if ok else '**missed**'} | {value} |")

# Issue 16: the floor, oauth2-proxy, and the price of authentication.
def cpu_of(n):
    return cpu.get(n)


def ratio(a, b, values):
    return values[a] / values[b] if values.get(a) and values.get(b) else None


pairs = [
    ("reverse proxy, signed in, sessions in memory / in the cookie", "authgate-session",
     "oauth2-proxy-cookie"),
    ("reverse proxy, signed in, sessions in Redis", "authgate-session-redis", "oauth2-proxy-redis"),
    ("behind nginx auth_request (oauth2-proxy: cookie sessions)", "nginx+authgate-forward-auth",
     "nginx+oauth2-proxy-cookie"),
    ("behind nginx auth_request (oauth2-proxy: Redis sessions)", "nginx+authgate-forward-auth",
     "nginx+oauth2-proxy-redis"),
]
print("\n## How authgate compares (issue 16)\n")
print("| setting | authgate req/s | oauth2-proxy req/s | × req/s | authgate CPU µs/req | "
      "oauth2-proxy CPU µs/req | CPU ratio |")
print("|---|---|---|---|---|---|---|")
for label, ours, theirs in pairs:
    if ours not in rps or theirs not in rps:
        print(f"| {label} | | not run | | | | |")
        continue
    r = ratio(ours, theirs, rps)
    c = ratio(ours, theirs, cpu)
    print(f"| {label} | {rps[ours]:.0f} | {rps[theirs]:.0f} | {r:.2f}× | {cpu_of(ours) or 0:.1f} | "
          f"{cpu_of(theirs) or 0:.1f} | {c:.2f}× |")
print("\nThe nginx rows count nginx's workers' CPU with the auth server's (and Redis's for the "
      "Redis rows). `pingora-floor` is examples/bare_proxy.rs: pingora with authgate's features, "
      "allocator and server settings, and no auth at all.")

floor_cpu, public_cpu = cpu_of("pingora-floor"), cpu_of("authgate-public")
half_own = {r["scenario"]: float(r["p99_ms"]) for r in open_loop
            if r["rate_basis"] == "authgate-public"}
added_own = half_own.get("authgate-public", 0.0) - half_own.get("direct", 0.0)
floor_checks = []
if floor_cpu and public_cpu:
    floor_checks.append(("public route ≤ 1.10× the floor's CPU per request",
                         public_cpu <= 1.10 * floor_cpu,
                         f"{public_cpu:.1f} vs {floor_cpu:.1f} µs ({public_cpu / floor_cpu:.2f}×)"))
for n in ("authgate-session", "authgate-jwt-repeated"):
    if cpu_of(n) and public_cpu:
        floor_checks.append((f"{n} ≤ public + 2 µs CPU per request", cpu_of(n) <= public_cpu + 2,
                             f"{cpu_of(n):.1f} vs {public_cpu:.1f} µs (+{cpu_of(n) - public_cpu:.1f})"))
for label, ours, theirs in pairs:
    if ours in rps and theirs in rps:
        floor_checks.append((f"ahead of oauth2-proxy: {label}",
                             rps[ours] > rps[theirs] and (cpu_of(ours) or 0) < (cpu_of(theirs) or 0),
                             f"{ratio(ours, theirs, rps):.2f}× req/s, {ratio(ours, theirs, cpu):.2f}× CPU"))
for ours, theirs in apache_match.items():
    floor_checks.append((f"{ours} ≥ 4× {theirs}", get(ours) >= 4 * get(theirs),
                         f"{get(ours) / get(theirs):.2f}×" if get(theirs) else "not run"))
floor_checks.append(("p99 added over direct ≤ 1 ms at half authgate's own maximum rate",
                     added_own <= 1.0, f"{added_own:.2f} ms"))
print("\n## Targets (issue 16)\n")
print("| target | result | measured |")
print("|---|---|---|")
for name, ok, value in floor_checks:
    print(f"| {name} | {'met' if ok else '**missed**'} | {value} |")

# The chart: one bar per scenario, median req/s.
width, bar_h, gap, left = 760, 26, 10, 230
height = len(order) * (bar_h + gap) + 40
top = max(rps.values())
bars = []
for i, n in enumerate(order):
    y = 20 + i * (bar_h + gap)
    w = (width - left - 90) * rps[n] / top
    colour = ("#3b7dd8" if "authgate" in n else "#c0703a" if n.startswith("apache")
              else "#6a9a4a" if "oauth2-proxy" in n else "#9a9a9a")
    bars.append(f'<text x="{left - 8}" y="{y + 18}" text-anchor="end" font-size="13">{n}</text>'
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>'
                f'<text x="{left + w + 6:.1f}" y="{y + 18}" font-size="12">{rps[n]:.0f}</text>')
svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">'
       f'<rect width="100%" height="100%" fill="white"/>{"".join(bars)}'
       f'<text x="{left}" y="{height - 8}" font-size="12">median requests/second (higher is better)</text></svg>')
open(svg_path, "w").write(svg)
