#!/usr/bin/env bash
# authgate's load harness: the gateway side by side with nginx on one machine, in one run.
#
#   benches/load/run.sh            # full run: 3 interleaved rounds of 10 s per scenario
#   benches/load/run.sh --quick    # smoke run: 1 round of 2 s per scenario
#
# Everything runs on loopback: an nginx origin (`return 200`), nginx proxying to it with
# upstream keep-alive, the npm `oidc-provider` as the identity provider, and authgate (release
# build, 2 worker threads; nginx gets 2 workers too). Writes benches/load/results.md and
# benches/load/results.svg. Needs Debian/Ubuntu (installs nginx-light and wrk with apt).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=benches/load

duration=10s rounds=3 connections=64 threads=2
if [ "${1:-}" = "--quick" ]; then duration=2s rounds=1; fi

scripts/install-deps
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y --no-install-recommends "${need[@]}" \
    || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${need[@]}"; }
fi
npm ci --prefix tests/oidc-provider --no-audit --no-fund --loglevel=error
cargo build --release --quiet --bin authgate --example mint_tokens

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

origin=18181 proxy=18182 idp=18183 gw=18180 admin=18190 gw_nocache=18184 admin_nocache=18191

# --- nginx: the origin and the plain proxy hop --------------------------------------------
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$origin; keepalive 128; }
  server { listen 127.0.0.1:$origin; location / { return 200 "ok\n"; } }
  server {
    listen 127.0.0.1:$proxy;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g "daemon off;" &
pids+=($!)

# --- the identity provider and tokens -----------------------------------------------------
PORT=$idp REDIRECT_URI="http://127.0.0.1:$gw/_auth/callback" POST_LOGOUT_URI="http://127.0.0.1:$gw/" \
  node tests/oidc-provider/server.mjs >/dev/null &
pids+=($!)
target/release/examples/mint_tokens "$work/jwt" 20000

# --- authgate -----------------------------------------------------------------------------
cat > "$work/authgate.yaml" <<CONF
listen: [{address: '127.0.0.1:$gw'}]
admin: {listen: '127.0.0.1:$admin'}
server: {threads: 2, drain_timeout: 0s}
log: {level: warn}
oidc_providers:
  - {id: node, issuer: 'http://127.0.0.1:$idp', client_id: authgate, client_secret: authgate-test-secret}
sessions: {cookie_keys: ['load-harness-cookie-key-0123456789abcdef']}
jwt_issuers:
  - {id: bench, issuer: 'https://bench.authgate.test', jwks_file: '$work/jwt/jwks.json', audiences: [bench-api]}
apps:
  - id: bench
    host: bench.test
    custom_domains: [127.0.0.1]
    origin: {url: 'http://127.0.0.1:$origin'}
    routes:
      - {prefix: /public, action: public}
      - {prefix: /jwt, action: jwt}
      - {prefix: /session, action: session}
CONF
target/release/authgate run -c "$work/authgate.yaml" &
gw_pid=$!
pids+=($gw_pid)
# The same gateway with the verified-token cache off: every bearer token is a cache miss, so
# the distinct-token scenario measures full verification however many requests it sends.
sed -e "s/127.0.0.1:$gw'/127.0.0.1:$gw_nocache'/" -e "s/127.0.0.1:$admin'/127.0.0.1:$admin_nocache'/" \
  "$work/authgate.yaml" > "$work/authgate-nocache.yaml"
echo "limits: {verified_token_cache_entries: 0}" >> "$work/authgate-nocache.yaml"
target/release/authgate run -c "$work/authgate-nocache.yaml" &
nocache_pid=$!
pids+=($nocache_pid)

for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 \
    && curl -fs "http://127.0.0.1:$admin_nocache/readyz" >/dev/null 2>&1 \
    && curl -fs "http://127.0.0.1:$idp/.well-known/openid-configuration" >/dev/null 2>&1 && break
  sleep 0.1
done
rss_idle_kb=$(awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status")
cookie=$(python3 $here/signin.py "http://127.0.0.1:$gw/session/start")
token=$(head -1 "$work/jwt/tokens.txt")

cat > "$work/distinct.lua" <<'LUA'
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/jwt/x", {["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]})
end
LUA

# scenario name | gateway pid (CPU is read from it) | URL | extra wrk arguments
scenarios=(
  "direct|$gw_pid|http://127.0.0.1:$origin/|"
  "nginx|$gw_pid|http://127.0.0.1:$proxy/|"
  "authgate-public|$gw_pid|http://127.0.0.1:$gw/public/x|"
  "authgate-session|$gw_pid|http://127.0.0.1:$gw/session/x|-H|Cookie: $cookie"
  "authgate-jwt-repeated|$gw_pid|http://127.0.0.1:$gw/jwt/x|-H|Authorization: Bearer $token"
  "authgate-jwt-distinct|$nocache_pid|http://127.0.0.1:$gw_nocache/jwt/x|-s|$work/distinct.lua"
  "authgate-reject-401|$gw_pid|http://127.0.0.1:$gw/session/x|"
)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
results="$work/results.csv"
echo "round,scenario,rps,p50_ms,p99_ms,requests,gateway_cpu_us_per_request,non2xx" > "$results"
for round in $(seq "$rounds"); do
  for entry in "${scenarios[@]}"; do
    IFS='|' read -r name pid url a1 a2 <<< "$entry"
    args=()
    [ -n "${a1:-}" ] && args+=("$a1" "$a2")
    before=$(cpu_ticks "$pid")
    out=$(TOKENS="$work/jwt/tokens.txt" wrk -t$threads -c$connections -d$duration --latency "${args[@]}" "$url")
    after=$(cpu_ticks "$pid")
    python3 $here/parse_wrk.py "$round" "$name" "$before" "$after" "$(getconf CLK_TCK)" <<< "$out" >> "$results"
  done
done

python3 $here/report.py "$results" "$rss_idle_kb" "$duration" "$rounds" "$connections" "$threads" \
  > $here/results.md
echo "wrote $here/results.md and $here/results.svg"
cat $here/results.md
