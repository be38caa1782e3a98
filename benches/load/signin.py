#!/usr/bin/env python3
"""Signs in through authgate against the npm oidc-provider (its real login and consent pages)
and prints the gateway's session cookie. Usage: signin.py http://127.0.0.1:PORT/path"""
import http.cookiejar
import re
import sys
import urllib.parse
import urllib.request

start = sys.argv[1]
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
opener.addheaders = [("Accept", "text/html")]


def form_action(url, html):
    action = re.search(r'action="([^"]+)"', html).group(1).replace("&amp;", "&")
    return urllib.parse.urljoin(url, action)


page = opener.open(start)
html, url = page.read().decode(), page.geturl()
page = opener.open(form_action(url, html), urllib.parse.urlencode(
    {"prompt": "login", "login": "bench-user", "password": "x"}).encode())
html, url = page.read().decode(), page.geturl()
page = opener.open(form_action(url, html), urllib.parse.urlencode({"prompt": "consent"}).encode())
page.read()
for cookie in jar:
    if cookie.name in ("authgate", "__Host-authgate"):
        print(f"{cookie.name}={cookie.value}")
        sys.exit(0)
sys.exit("no session cookie: sign-in failed")
