#!/usr/bin/env python3
"""Signs in through a relying party (authgate, or Apache mod_auth_openidc) against the npm
oidc-provider (its real login and consent pages) and prints the relying party's session cookie
as `name=value`. Usage: signin.py http://127.0.0.1:PORT/path [COOKIE_NAME ...]
(default names: authgate's)."""
import http.cookiejar
import re
import sys
import urllib.parse
import urllib.request

start = sys.argv[1]
names = sys.argv[2:] or ["authgate", "__Host-authgate"]
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
    if cookie.name in names:
        print(f"{cookie.name}={cookie.value}")
        sys.exit(0)
sys.exit("no session cookie: sign-in failed")
