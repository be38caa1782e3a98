#!/usr/bin/env bash
# authgate's load harness: the gateway side by side with pingora's own floor, nginx, Apache
# mod_auth_openidc and oauth2-proxy on one machine, in one run.
#
#   benches/load/run.sh            # full run: 3 interleaved rounds of 10 s per scenario
#   benches/load/run.sh --quick    # smoke run (CI): 1 round of 2 s, debug build, 2,000 sessions
#
# Everything runs on loopback: an nginx origin (`return 200`), nginx proxying to it with
# upstream keep-alive, Apache httpd + mod_auth_openidc protecting the origin (an OIDC session
# and a JWT resource server), the npm `oidc-provider` as the identity provider, authgate with
# sessions in memory, and authgate with sessions in a Redis server (a replica's near cache on,
# and off: every request a cold lookup); a bare pingora proxy built like authgate
# (examples/bare_proxy.rs: the floor); oauth2-proxy v7.15.6 signed in through the same provider,
# with cookie sessions and with Redis sessions, as a reverse proxy and as nginx's
# `auth_request` target, beside authgate as nginx's forward-auth target. nginx gets 2 workers,
# Apache 2 server processes, authgate and the floor 2 worker threads, oauth2-proxy
# GOMAXPROCS=2. Writes benches/load/results.md and benches/load/results.svg (the
# full run; --quick writes to target/load-quick/). Needs Debian/Ubuntu: installs nginx-light,
# wrk, apache2, libapache2-mod-auth-openidc, redis-server and openssl with apt, and oha
# (open-loop load) with cargo, and oauth2-proxy with `go install` (Go from the machine; about a
# minute, so --quick runs it too).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=benches/load

duration=10s rounds=3 connections=64 threads=2 sessions=100000 profile=release
out=$here open_loop_secs=10
if [ "${1:-}" = "--quick" ]; then
  duration=2s rounds=1 sessions=2000 profile=debug out=target/load-quick open_loop_secs=2
fi
mkdir -p "$out"

scripts/install-deps
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v apache2 >/dev/null 2>&1 || need+=(apache2)
[ -e /usr/lib/apache2/modules/mod_auth_openidc.so ] || need+=(libapache2-mod-auth-openidc)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y --no-install-recommends "${need[@]}" \
    || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${need[@]}"; }
fi
export PATH="$HOME/.cargo/bin:$PATH"
command -v oha >/dev/null 2>&1 || cargo install --locked --quiet oha
npm ci --prefix tests/oidc-provider --no-audit --no-fund --loglevel=error
examples=(--example mint_tokens --example sign_in_many --example bare_proxy)
if [ "$profile" = release ]; then
  cargo build --release --quiet --bin authgate "${examples[@]}"
else
  cargo build --quiet --bin authgate "${examples[@]}"
fi
bin=${CARGO_TARGET_DIR:-target}/$profile
gobin=$(realpath -m "${CARGO_TARGET_DIR:-target}/go-bin")
if [ ! -x "$gobin/oauth2-proxy" ]; then
  command -v go >/dev/null 2>&1 || { echo "go is needed to build oauth2-proxy" >&2; exit 1; }
  GOBIN="$gobin" go install github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6
fi

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/apache/httpd.pid" ] && kill "$(cat "$work/apache/httpd.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

origin=18181 proxy=18182 idp=18183 gw=18180 admin=18190 gw_nocache=18184 admin_nocache=18191
apache=18185 jwks_tls=18186 gw_sessions=18187 admin_sessions=18194
demo_gw=18192 demo_admin=18193 demo_idp=18188 demo_origin=18189
redis=18195 gw_redis=18196 admin_redis=18197 gw_cold=18198 admin_cold=18199
gw_redis_sessions=18200 admin_redis_sessions=18201
floor=18202 o2p=18203 o2p_redis=18204 ngx_o2p=18205 ngx_o2p_redis=18206 ngx_fa=18207

# --- nginx: the origin, the plain proxy hop, and the JWKS for Apache (which wants https) ----
mkdir -p "$work/nginx/logs" "$work/apache"
"$bin/examples/mint_tokens" "$work/jwt" 20000
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -keyout "$work/jwks.key" -out "$work/jwks.crt" 2>/dev/null
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
  # nginx in front, asking oauth2-proxy (cookie sessions, Redis sessions) or authgate about
  # each request with auth_request (over kept-alive connections), then proxying to the origin
  # itself.
  upstream oauth2_proxy { server 127.0.0.1:$o2p; keepalive 64; }
  upstream oauth2_proxy_redis { server 127.0.0.1:$o2p_redis; keepalive 64; }
  upstream authgate { server 127.0.0.1:$gw; keepalive 64; }
  server {
    listen 127.0.0.1:$ngx_o2p;
    location = /oauth2/auth {
      internal; proxy_pass http://oauth2_proxy; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass_request_body off; proxy_set_header Content-Length "";
    }
    location / { auth_request /oauth2/auth; proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$ngx_o2p_redis;
    location = /oauth2/auth {
      internal; proxy_pass http://oauth2_proxy_redis; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass_request_body off; proxy_set_header Content-Length "";
    }
    location / { auth_request /oauth2/auth; proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$ngx_fa;
    location = /_auth/verify {
      internal; proxy_pass http://authgate; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL http://bench.test\$request_uri;
      proxy_set_header X-Original-Method \$request_method;
    }
    location / { auth_request /_auth/verify; proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$jwks_tls ssl;
    ssl_certificate $work/jwks.crt; ssl_certificate_key $work/jwks.key;
    location = /jwks.json { alias $work/jwt/jwks.json; }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g "daemon off;" &
pids+=($!)
nginx_pid=${pids[-1]}

# --- pingora's floor: a bare proxy built like authgate, no auth ---------------------------
"$bin/examples/bare_proxy" "127.0.0.1:$floor" "127.0.0.1:$origin" 2 2>"$work/floor.log" &
pids+=($!)
floor_pid=${pids[-1]}

# --- Redis: the shared session store ------------------------------------------------------
redis-server --port $redis --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null &
pids+=($!)
redis_pid=${pids[-1]}
redis_used() { redis-cli -p $redis INFO memory | awk -F: '/^used_memory:/ {print $2+0}'; }

# --- the identity providers --------------------------------------------------------------
callbacks="http://127.0.0.1:$gw/_auth/callback,http://127.0.0.1:$gw_redis/_auth/callback"
callbacks="$callbacks,http://127.0.0.1:$gw_cold/_auth/callback"
PORT=$idp REDIRECT_URI="$callbacks" POST_LOGOUT_URI="http://127.0.0.1:$gw/" \
  APACHE_REDIRECT_URI="http://127.0.0.1:$apache/session/redirect_uri" \
  OAUTH2_PROXY_REDIRECT_URI="http://127.0.0.1:$o2p/oauth2/callback,http://127.0.0.1:$o2p_redis/oauth2/callback" \
  node tests/oidc-provider/server.mjs >/dev/null 2>&1 &
pids+=($!)
# authgate's development provider signs in fast enough to create 100,000 sessions; only its
# provider part is used (its own gateway stays idle).
"$bin/authgate" demo --listen "127.0.0.1:$demo_gw" --admin "127.0.0.1:$demo_admin" \
  --origin "127.0.0.1:$demo_origin" --idp "127.0.0.1:$demo_idp" >/dev/null 2>&1 &
pids+=($!)

ready() { curl -fsk "$1" >/dev/null 2>&1; }
wait_for() {
  local url
  for _ in $(seq 300); do
    for url in "$@"; do ready "$url" || { sleep 0.1; continue 2; }; done
    return 0
  done
  echo "not ready: $*" >&2
  exit 1
}
# The gateways discover the providers at start, so the providers come first.
wait_for "http://127.0.0.1:$idp/.well-known/openid-configuration" \
  "http://127.0.0.1:$demo_idp/.well-known/openid-configuration" \
  "https://127.0.0.1:$jwks_tls/jwks.json" "http://127.0.0.1:$origin/"
for _ in $(seq 100); do [ "$(redis-cli -p $redis PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done

# --- oauth2-proxy: cookie sessions, and Redis sessions ------------------------------------
start_oauth2_proxy() { # port, extra flags...
  local port=$1; shift
  GOMAXPROCS=2 "$gobin/oauth2-proxy" --http-address="127.0.0.1:$port" --provider=oidc \
    --oidc-issuer-url="http://127.0.0.1:$idp" --client-id=oauth2-proxy \
    --client-secret=oauth2-proxy-test-secret --redirect-url="http://127.0.0.1:$port/oauth2/callback" \
    --code-challenge-method=S256 --cookie-secret=load-harness-oauth2-proxy-32byte \
    --cookie-secure=false --email-domain='*' --insecure-oidc-allow-unverified-email=true \
    --upstream="http://127.0.0.1:$origin/" --request-logging=false --auth-logging=false \
    --standard-logging=false "$@" >"$work/oauth2-proxy-$port.log" 2>&1 &
  pids+=($!)
}
start_oauth2_proxy $o2p
o2p_pid=${pids[-1]}
start_oauth2_proxy $o2p_redis --session-store-type=redis --redis-connection-url="redis://127.0.0.1:$redis"
o2p_redis_pid=${pids[-1]}
wait_for "http://127.0.0.1:$o2p/ping" "http://127.0.0.1:$o2p_redis/ping" "http://127.0.0.1:$floor/"

# --- Apache httpd + mod_auth_openidc --------------------------------------------------------
modules=/usr/lib/apache2/modules
cat > "$work/apache/httpd.conf" <<CONF
ServerRoot "$work/apache"
ServerName bench.test
Listen 127.0.0.1:$apache
PidFile $work/apache/httpd.pid
ErrorLog $work/apache/error.log
LogLevel error
LoadModule mpm_event_module $modules/mod_mpm_event.so
LoadModule authn_core_module $modules/mod_authn_core.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule authz_user_module $modules/mod_authz_user.so
LoadModule proxy_module $modules/mod_proxy.so
LoadModule proxy_http_module $modules/mod_proxy_http.so
LoadModule auth_openidc_module $modules/mod_auth_openidc.so
User nobody
Group nogroup
StartServers 2
ServerLimit 2
ThreadLimit 64
ThreadsPerChild 64
MinSpareThreads 64
MaxSpareThreads 128
MaxRequestWorkers 128
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 60
OIDCProviderMetadataURL http://127.0.0.1:$idp/.well-known/openid-configuration
OIDCClientID apache
OIDCClientSecret apache-test-secret
OIDCRedirectURI http://127.0.0.1:$apache/session/redirect_uri
OIDCCryptoPassphrase load-harness-apache-passphrase
OIDCPKCEMethod S256
OIDCScope "openid email"
OIDCOAuthVerifyJwksUri https://127.0.0.1:$jwks_tls/jwks.json
OIDCOAuthSSLValidateServer Off
OIDCOAuthRemoteUserClaim sub
<Location /session>
  AuthType openid-connect
  Require valid-user
</Location>
<Location /jwt>
  AuthType oauth20
  Require valid-user
</Location>
ProxyPass / http://127.0.0.1:$origin/ keepalive=On
CONF

# --- authgate -----------------------------------------------------------------------------
# The head of a gateway's configuration: its listener and admin ports, 2 worker threads.
gateway_head() {
  printf "listen: [{address: '127.0.0.1:%s'}]\nadmin: {listen: '127.0.0.1:%s'}\n" "$1" "$2"
  printf "server: {threads: 2, drain_timeout: 0s}\nlog: {level: warn}\n"
}
# Starts the gateway of $work/NAME.yaml, logging to $work/NAME.log (pingora reports each
# connection wrk drops at the end of a run); its pid is last in `pids`.
start_gateway() {
  "$bin/authgate" run -c "$work/$1.yaml" 2>"$work/$1.log" &
  pids+=($!)
}
{ gateway_head $gw $admin; cat <<CONF
oidc_providers:
  - {id: node, issuer: 'http://127.0.0.1:$idp', client_id: authgate, client_secret: authgate-test-secret}
sessions: {cookie_keys: ['load-harness-cookie-key-0123456789abcdef']}
# nginx's forward-auth checks come from loopback.
trusted_proxies: [127.0.0.1]
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
} > "$work/authgate.yaml"
start_gateway authgate
gw_pid=${pids[-1]}
# The same gateway with the verified-token cache off: every bearer token is a cache miss, so
# the distinct-token scenario measures full verification however many requests it sends.
sed -e "s/127.0.0.1:$gw'/127.0.0.1:$gw_nocache'/" -e "s/127.0.0.1:$admin'/127.0.0.1:$admin_nocache'/" \
  "$work/authgate.yaml" > "$work/authgate-nocache.yaml"
echo "limits: {verified_token_cache_entries: 0}" >> "$work/authgate-nocache.yaml"
start_gateway authgate-nocache
nocache_pid=${pids[-1]}
# A third gateway, signed into many times through the development provider, for the memory
# held by live sessions.
{ gateway_head $gw_sessions $admin_sessions; cat <<CONF
oidc_providers:
  - {id: dev, issuer: 'http://127.0.0.1:$demo_idp', client_id: authgate-demo}
sessions: {cookie_keys: ['load-harness-cookie-key-0123456789abcdef'], max_sessions: $((sessions * 2))}
apps:
  - id: bench
    host: bench.test
    custom_domains: [127.0.0.1]
    origin: {url: 'http://127.0.0.1:$origin'}
    routes: [{prefix: /session, action: session}]
CONF
} > "$work/authgate-sessions.yaml"
start_gateway authgate-sessions
sessions_pid=${pids[-1]}

# The session gateway again with its sessions in Redis: near cache on (hot sessions cost no
# round trip), and off (every request reads Redis: the cold path).
redis_sessions() {
  printf "sessions: {cookie_keys: ['load-harness-cookie-key-0123456789abcdef'], store: redis,"
  printf " redis: {url: 'redis://127.0.0.1:%s/', key_prefix: '%s'%s}}\n" $redis "$1" "${2:-}"
}
sed -e "s/127.0.0.1:$gw'/127.0.0.1:$gw_redis'/" -e "s/127.0.0.1:$admin'/127.0.0.1:$admin_redis'/" \
  -e "s|^sessions: .*|$(redis_sessions 'bench-hot:')|" "$work/authgate.yaml" > "$work/authgate-redis.yaml"
start_gateway authgate-redis
redis_gw_pid=${pids[-1]}
sed -e "s/127.0.0.1:$gw'/127.0.0.1:$gw_cold'/" -e "s/127.0.0.1:$admin'/127.0.0.1:$admin_cold'/" \
  -e "s|^sessions: .*|$(redis_sessions 'bench-cold:' ', near_cache_entries: 0')|" \
  "$work/authgate.yaml" > "$work/authgate-redis-cold.yaml"
start_gateway authgate-redis-cold
cold_gw_pid=${pids[-1]}
# Signed into many times, for Redis's memory per session.
sed -e "s/127.0.0.1:$gw_sessions'/127.0.0.1:$gw_redis_sessions'/" \
  -e "s/127.0.0.1:$admin_sessions'/127.0.0.1:$admin_redis_sessions'/" \
  -e "s|^sessions: .*|$(redis_sessions 'bench-many:')|" \
  "$work/authgate-sessions.yaml" > "$work/authgate-redis-sessions.yaml"
start_gateway authgate-redis-sessions

wait_for "http://127.0.0.1:$admin/readyz" "http://127.0.0.1:$admin_nocache/readyz" \
  "http://127.0.0.1:$admin_sessions/readyz" "http://127.0.0.1:$admin_redis/readyz" \
  "http://127.0.0.1:$admin_cold/readyz" "http://127.0.0.1:$admin_redis_sessions/readyz"
apache2 -f "$work/apache/httpd.conf" -k start
for _ in $(seq 100); do [ -f "$work/apache/httpd.pid" ] && break; sleep 0.1; done
sleep 0.5
apache_pids() { pgrep -d, -f "apache2 -f $work/apache/httpd.conf"; }

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
rss_idle_kb=$(rss_kb "$gw_pid")
cookie=$(python3 $here/signin.py "http://127.0.0.1:$gw/session/start")
redis_cookie=$(python3 $here/signin.py "http://127.0.0.1:$gw_redis/session/start")
cold_cookie=$(python3 $here/signin.py "http://127.0.0.1:$gw_cold/session/start")
apache_cookie=$(python3 $here/signin.py "http://127.0.0.1:$apache/session/start" mod_auth_openidc_session)
o2p_cookie=$(python3 $here/signin.py "http://127.0.0.1:$o2p/oauth2/start?rd=%2F" _oauth2_proxy)
o2p_redis_cookie=$(python3 $here/signin.py "http://127.0.0.1:$o2p_redis/oauth2/start?rd=%2F" _oauth2_proxy)
token=$(head -1 "$work/jwt/tokens.txt")
curl -fs -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$apache/jwt/x" \
  || { echo "Apache refused the bearer token"; cat "$work/apache/error.log"; exit 1; }

cat > "$work/distinct.lua" <<'LUA'
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/jwt/x", {["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]})
end
LUA

# scenario name | whose CPU is read (pids, apache, nginx,PIDS: nginx's workers and PIDS, or -) |
# URL | extra wrk arguments
scenarios=(
  "direct|-|http://127.0.0.1:$origin/|"
  "nginx|-|http://127.0.0.1:$proxy/|"
  "pingora-floor|$floor_pid|http://127.0.0.1:$floor/|"
  "apache-session|apache|http://127.0.0.1:$apache/session/x|-H|Cookie: $apache_cookie"
  "apache-jwt|apache|http://127.0.0.1:$apache/jwt/x|-H|Authorization: Bearer $token"
  "authgate-public|$gw_pid|http://127.0.0.1:$gw/public/x|"
  "authgate-session|$gw_pid|http://127.0.0.1:$gw/session/x|-H|Cookie: $cookie"
  "authgate-session-redis|$redis_gw_pid,$redis_pid|http://127.0.0.1:$gw_redis/session/x|-H|Cookie: $redis_cookie"
  "authgate-session-redis-cold|$cold_gw_pid,$redis_pid|http://127.0.0.1:$gw_cold/session/x|-H|Cookie: $cold_cookie"
  "authgate-jwt-repeated|$gw_pid|http://127.0.0.1:$gw/jwt/x|-H|Authorization: Bearer $token"
  "authgate-jwt-distinct|$nocache_pid|http://127.0.0.1:$gw_nocache/jwt/x|-s|$work/distinct.lua"
  "authgate-reject-401|$gw_pid|http://127.0.0.1:$gw/session/x|"
  "oauth2-proxy-cookie|$o2p_pid|http://127.0.0.1:$o2p/x|-H|Cookie: $o2p_cookie"
  "oauth2-proxy-redis|$o2p_redis_pid,$redis_pid|http://127.0.0.1:$o2p_redis/x|-H|Cookie: $o2p_redis_cookie"
  "nginx+oauth2-proxy-cookie|nginx,$o2p_pid|http://127.0.0.1:$ngx_o2p/x|-H|Cookie: $o2p_cookie"
  "nginx+oauth2-proxy-redis|nginx,$o2p_redis_pid,$redis_pid|http://127.0.0.1:$ngx_o2p_redis/x|-H|Cookie: $o2p_redis_cookie"
  "nginx+authgate-forward-auth|nginx,$gw_pid|http://127.0.0.1:$ngx_fa/session/x|-H|Cookie: $cookie"
)

# CPU ticks (user + system) of a comma-separated list of processes.
cpu_ticks() {
  local total=0 p
  for p in ${1//,/ }; do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$total"
}
whose() {
  case "$1" in
    -) echo "";;
    apache) apache_pids;;
    nginx,*) echo "$(pgrep -d, -P "$nginx_pid"),${1#nginx,}";;
    *) echo "$1";;
  esac
}
results="$work/results.csv"
echo "round,scenario,rps,p50_ms,p99_ms,requests,server_cpu_us_per_request,non2xx" > "$results"
for round in $(seq "$rounds"); do
  for entry in "${scenarios[@]}"; do
    IFS='|' read -r name who url a1 a2 <<< "$entry"
    args=()
    [ -n "${a1:-}" ] && args+=("$a1" "$a2")
    procs=$(whose "$who")
    before=$([ -n "$procs" ] && cpu_ticks "$procs" || echo 0)
    text=$(TOKENS="$work/jwt/tokens.txt" wrk -t$threads -c$connections -d$duration --latency "${args[@]}" "$url")
    after=$([ -n "$procs" ] && cpu_ticks "$procs" || echo 0)
    python3 $here/parse_wrk.py "$round" "$name" "$before" "$after" "$(getconf CLK_TCK)" "$procs" <<< "$text" >> "$results"
  done
done

# Open loop: latency at fixed rates (half of nginx's and half of authgate-public's median
# throughput just measured), with oha correcting for coordinated omission.
median_rps() { awk -F, -v s="$1" '$2 == s {print $3}' "$results" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
open_loop="$work/open_loop.csv"
echo "rate_basis,rate,scenario,p50_ms,p99_ms,achieved_rps" > "$open_loop"
for basis in nginx authgate-public; do
  rate=$(( $(median_rps "$basis") / 2 ))
  for entry in "direct|http://127.0.0.1:$origin/|" "nginx|http://127.0.0.1:$proxy/|" \
               "authgate-public|http://127.0.0.1:$gw/public/x|" \
               "authgate-session|http://127.0.0.1:$gw/session/x|Cookie: $cookie"; do
    IFS='|' read -r name url hdr <<< "$entry"
    hargs=()
    [ -n "$hdr" ] && hargs+=(-H "$hdr")
    oha --no-tui --output-format json --latency-correction -z "${open_loop_secs}s" \
      -c $connections -q "$rate" "${hargs[@]}" "$url" > "$work/oha.json"
    python3 $here/parse_oha.py "$basis" "$rate" "$name" < "$work/oha.json" >> "$open_loop"
  done
done
# A session held near against one read from Redis on every request, at half the Redis-backed
# session route's median throughput, and at half the cold route's.
for basis in authgate-session-redis authgate-session-redis-cold; do
  rate=$(( $(median_rps $basis) / 2 ))
  for entry in "authgate-session-redis|http://127.0.0.1:$gw_redis/session/x|Cookie: $redis_cookie" \
               "authgate-session-redis-cold|http://127.0.0.1:$gw_cold/session/x|Cookie: $cold_cookie"; do
    IFS='|' read -r name url hdr <<< "$entry"
    oha --no-tui --output-format json --latency-correction -z "${open_loop_secs}s" \
      -c $connections -q "$rate" -H "$hdr" "$url" > "$work/oha.json"
    python3 $here/parse_oha.py $basis "$rate" "$name" < "$work/oha.json" >> "$open_loop"
  done
done

# Memory with many live sessions: real sign-ins through the development provider.
rss_sessions_before_kb=$(rss_kb "$sessions_pid")
"$bin/examples/sign_in_many" "http://127.0.0.1:$gw_sessions/session/x" "$sessions" 32
rss_sessions_after_kb=$(rss_kb "$sessions_pid")
# The same sign-ins with the sessions in Redis: its memory before and after.
redis_before=$(redis_used)
"$bin/examples/sign_in_many" "http://127.0.0.1:$gw_redis_sessions/session/x" "$sessions" 32
redis_after=$(redis_used)
redis-cli -p $redis --scan --pattern 'bench-many:*' | sed -E 's/^bench-many:([a-z]+):.*/\1/' \
  | sort | uniq -c > "$work/redis_keys.txt"

python3 $here/report.py "$results" "$open_loop" "$out/results.svg" "$rss_idle_kb" \
  "$rss_sessions_before_kb" "$rss_sessions_after_kb" "$sessions" \
  "$duration" "$rounds" "$connections" "$threads" "${1:-}" \
  "$redis_before" "$redis_after" "$work/redis_keys.txt" > "$out/results.md"
echo "wrote $out/results.md and $out/results.svg"
cat "$out/results.md"
