#!/usr/bin/env bash
# authgate's soak: mixed traffic for a long stretch while the configuration is reloaded and
# the identity provider goes away and comes back, counting every error and sampling memory
# and descriptors.
#
#   benches/soak/run.sh               # 10 minutes, release build
#   benches/soak/run.sh --minutes 2   # shorter
#   benches/soak/run.sh --minutes 1 --debug   # CI's smoke run (debug build)
#
# On loopback: an nginx origin, the npm `oidc-provider` (a real sign-in gives the session
# cookie), a JWKS served by a small HTTP server, and authgate in front with a public, a
# signed-in and a bearer route. Three open-loop oha streams (200 requests/s each) run the whole
# time, and a fourth sends a distinct bearer token (a verified-token cache miss) 20 times a
# second; every 30 s from second 15 the config file is changed (an app added or removed) and
# SIGHUP sent, so 20 reloads in 10 minutes; from 40% to 60% of the run the identity provider and the JWKS server
# are stopped. Every 5 s authgate's RSS and open descriptors are sampled. Writes
# benches/soak/results.md (a --debug run writes target/soak-results.md) and exits non-zero
# when any request failed. Installs nginx (apt) and oha (cargo) when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=benches/soak

minutes=10 profile=release rate=200
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --debug) profile=debug; shift ;;
    *) echo "usage: $0 [--minutes N] [--debug]" >&2; exit 2 ;;
  esac
done
secs=$((minutes * 60))

scripts/install-deps
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y --no-install-recommends "${need[@]}" \
    || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${need[@]}"; }
fi
export PATH="$HOME/.cargo/bin:$PATH"
command -v oha >/dev/null 2>&1 || cargo install --locked --quiet oha
npm ci --prefix tests/oidc-provider --no-audit --no-fund --loglevel=error
if [ "$profile" = release ]; then
  cargo build --release --quiet --bin authgate --example mint_tokens
else
  cargo build --quiet --bin authgate --example mint_tokens
fi
bin=${CARGO_TARGET_DIR:-target}/$profile

work=$(mktemp -d)
chmod 755 "$work"
pids=()
idp_pid="" jwks_pid=""
cleanup() {
  for p in "${pids[@]}" $idp_pid $jwks_pid; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

origin=18281 idp=18283 jwks=18284 gw=18280 admin=18290

# --- origin, identity provider, JWKS -------------------------------------------------------
mkdir -p "$work/nginx/logs"
"$bin/examples/mint_tokens" "$work/jwt" $((secs * 20 + 100))
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$origin; location / { return 200 "ok\n"; } }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g "daemon off;" &
pids+=($!)
start_idp() {
  PORT=$idp REDIRECT_URI="http://127.0.0.1:$gw/_auth/callback" POST_LOGOUT_URI="http://127.0.0.1:$gw/" \
    node tests/oidc-provider/server.mjs >/dev/null 2>&1 &
  idp_pid=$!
}
start_jwks() {
  python3 -m http.server "$jwks" --bind 127.0.0.1 --directory "$work/jwt" >/dev/null 2>&1 &
  jwks_pid=$!
}
start_idp
start_jwks
wait_for() {
  for _ in $(seq 300); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "not ready: $1" >&2
  exit 1
}
wait_for "http://127.0.0.1:$idp/.well-known/openid-configuration"
wait_for "http://127.0.0.1:$jwks/jwks.json"
wait_for "http://127.0.0.1:$origin/"

# --- authgate ------------------------------------------------------------------------------
write_config() { # $1: extra apps (YAML lines)
  cat > "$work/authgate.yaml" <<CONF
listen: [{address: '127.0.0.1:$gw'}]
admin: {listen: '127.0.0.1:$admin'}
server: {threads: 2, drain_timeout: 1s}
log: {level: 'warn,authgate::server=info'}
oidc_providers:
  - {id: node, issuer: 'http://127.0.0.1:$idp', client_id: authgate, client_secret: authgate-test-secret}
sessions: {cookie_keys: ['soak-harness-cookie-key-0123456789abcdef']}
jwt_issuers:
  - {id: bench, issuer: 'https://bench.authgate.test', jwks_uri: 'http://127.0.0.1:$jwks/jwks.json', audiences: [bench-api]}
apps:
  - id: soak
    host: 127.0.0.1
    origin: {url: 'http://127.0.0.1:$origin'}
    routes:
      - {prefix: /public, action: public}
      - {prefix: /jwt, action: jwt}
      - {prefix: /session, action: session}
$1
CONF
}
write_config ""
"$bin/authgate" run -c "$work/authgate.yaml" 2>"$work/authgate.log" &
gw_pid=$!
pids+=($gw_pid)
wait_for "http://127.0.0.1:$admin/readyz"

cookie=$(python3 benches/load/signin.py "http://127.0.0.1:$gw/session/start")
token=$(head -n 1 "$work/jwt/tokens.txt")
curl -fs -o /dev/null -H "cookie: $cookie" "http://127.0.0.1:$gw/session/x"
curl -fs -o /dev/null -H "authorization: Bearer $token" "http://127.0.0.1:$gw/jwt/x"

# --- the run ---------------------------------------------------------------------------------
echo "soak: ${minutes} min, ${rate} req/s on each of public, session and bearer routes"
stream() { # name, path, header...
  local name=$1 path=$2; shift 2
  oha -z "${secs}s" -q "$rate" -c 8 --no-tui --output-format json "$@" \
    "http://127.0.0.1:$gw$path" > "$work/$name.json" 2>"$work/$name.err" &
  pids+=($!)
  streams+=($!)
}
streams=()
stream public /public/x
stream session /session/x -H "cookie: $cookie"
stream bearer /jwt/x -H "authorization: Bearer $token"
# Distinct tokens (each a cache miss) at 20/s: these need the issuer's keys, across reloads
# and through the JWKS outage.
python3 "$here/distinct_tokens.py" "http://127.0.0.1:$gw/jwt/d" "$work/jwt/tokens.txt" "$secs" 20 \
  > "$work/distinct.json" &
pids+=($!)
streams+=($!)

sample() { # elapsed seconds, event
  local rss fds
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status")
  fds=$(ls "/proc/$gw_pid/fd" | wc -l)
  echo "$1,$rss,$fds,$2" >> "$work/samples.csv"
}
echo "second,rss_kib,fds,event" > "$work/samples.csv"
outage_from=$((secs * 4 / 10)) outage_to=$((secs * 6 / 10))
reloads=0 refused_reloads=0
start=$(date +%s)
next_reload=15
while :; do
  now=$(($(date +%s) - start))
  [ "$now" -ge "$secs" ] && break
  event=""
  if [ -n "$idp_pid" ] && [ "$now" -ge "$outage_from" ] && [ "$now" -lt "$outage_to" ]; then
    kill "$idp_pid" "$jwks_pid"; wait "$idp_pid" "$jwks_pid" 2>/dev/null || true
    idp_pid="" jwks_pid=""
    event="provider and JWKS down"
  elif [ -z "$idp_pid" ] && [ "$now" -ge "$outage_to" ]; then
    start_idp; start_jwks
    event="provider and JWKS back"
  fi
  if [ "$now" -ge "$next_reload" ]; then
    if [ $((reloads % 2)) -eq 0 ]; then
      write_config "  - {id: extra, host: extra.test, default_action: public, origin: {url: 'http://127.0.0.1:$origin'}}"
    else
      write_config ""
    fi
    kill -HUP "$gw_pid"
    reloads=$((reloads + 1))
    next_reload=$((next_reload + 30))
    event="${event:+$event; }reload $reloads"
  fi
  sample "$now" "$event"
  sleep 5
done
for p in "${streams[@]}"; do wait "$p" || true; done
sample "$(($(date +%s) - start))" "end"
refused_reloads=$(grep -c "reload refused" "$work/authgate.log" || true)
applied_reloads=$(grep -c "configuration reloaded" "$work/authgate.log" || true)

# --- the report --------------------------------------------------------------------------
out=$here/results.md
[ "$profile" = debug ] && out=${CARGO_TARGET_DIR:-target}/soak-results.md
status=0
python3 "$here/report.py" "$work" "$minutes" "$rate" "$reloads" "$applied_reloads" \
  "$refused_reloads" "$outage_from" "$outage_to" > "$out" || status=$?
cat "$out"
exit $status
