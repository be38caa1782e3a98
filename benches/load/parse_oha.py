#!/usr/bin/env python3
"""Turns one `oha --output-format json` report (stdin) into a CSV row:
rate_basis,rate,scenario,p50_ms,p99_ms,achieved_rps
Usage: parse_oha.py RATE_BASIS RATE SCENARIO"""
import json
import sys

basis, rate, name = sys.argv[1:4]
report = json.load(sys.stdin)
latency = report["latencyPercentiles"]
achieved = report["summary"]["requestsPerSec"]
print(f"{basis},{rate},{name},{latency['p50'] * 1000:.3f},{latency['p99'] * 1000:.3f},{achieved:.0f}")
