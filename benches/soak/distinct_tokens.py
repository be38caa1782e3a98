#!/usr/bin/env python3
"""Sends one GET a request with a distinct bearer token each, at a fixed rate, for a while,
over one kept-alive connection (reopened when the gateway closes it), and prints the count
of each status (and of transport errors) as JSON.
Usage: distinct_tokens.py URL TOKENS_FILE SECONDS RATE"""
import http.client
import json
import sys
import time
import urllib.parse

url, tokens_file, seconds, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
parts = urllib.parse.urlsplit(url)
tokens = open(tokens_file).read().split()
counts = {}
conn = None
start = time.monotonic()
sent = 0
while time.monotonic() - start < seconds and sent < len(tokens):
    due = start + sent / rate
    pause = due - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    token = tokens[sent]
    sent += 1
    try:
        if conn is None:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", parts.path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        resp.read()
        key = str(resp.status)
        if resp.getheader("connection", "").lower() == "close":
            conn.close()
            conn = None
    except (OSError, http.client.HTTPException) as e:
        key = f"error: {type(e).__name__}"
        if conn is not None:
            conn.close()
        conn = None
    counts[key] = counts.get(key, 0) + 1
print(json.dumps({"sent": sent, "statuses": counts}))
