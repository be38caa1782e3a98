#!/usr/bin/env bash
# Validates everything in deploy/ with the tools that consume it, installed from the
# registries: the compose file with the Compose Specification's own loader (compose-go, what
# `docker compose config` uses), the Helm chart with `helm lint` and `helm template`, every
# Kubernetes manifest (and the chart's rendering) against the Kubernetes API schemas
# (kubernetes-validate, strict), and the systemd unit with `systemd-analyze verify` (any
# warning fails) and `systemd-analyze security` (exposure must stay under 2.0); and the admin
# API's description (docs/admin-api.openapi.yaml) with openapi-spec-validator.
# The configurations the files carry are checked against docs/authgate.schema.json by the
# test suite (tests/gateway/cli.rs).
#
#   deploy/validate.sh            # needs Go, Python 3 with pip, systemd-analyze
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
COMPOSE_GO_VERSION=v2.16.2
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSION=1.31.0
OPENAPI_SPEC_VALIDATOR_VERSION=0.7.2

tools="${AUTHGATE_TOOLS:-$PWD/target/deploy-tools}"
mkdir -p "$tools/bin"
export GOBIN="$tools/bin"
if [ ! -x "$tools/bin/helm" ]; then
  echo "== installing helm $HELM_VERSION"
  go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
if [ ! -x "$tools/bin/compose-spec" ]; then
  echo "== installing the compose-spec validator $COMPOSE_GO_VERSION"
  go install "github.com/compose-spec/compose-go/v2/cmd@$COMPOSE_GO_VERSION"
  mv "$tools/bin/cmd" "$tools/bin/compose-spec"
fi
if [ ! -x "$tools/venv/bin/kubernetes-validate" ]; then
  echo "== installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
if [ ! -x "$tools/venv/bin/openapi-spec-validator" ]; then
  echo "== installing openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION"
  "$tools/venv/bin/pip" install -q "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
fi
kv() { "$tools/venv/bin/kubernetes-validate" --strict -k "$KUBERNETES_VERSION" "$@"; }

echo "== admin API description"
"$tools/venv/bin/openapi-spec-validator" docs/admin-api.openapi.yaml

echo "== compose"
(cd deploy/compose && "$tools/bin/compose-spec" compose.yaml >/dev/null)

echo "== kubernetes manifests"
kv deploy/kubernetes/*.yaml

echo "== helm chart"
"$tools/bin/helm" lint --strict deploy/helm/authgate
rendered="$tools/helm-rendered.yaml"
"$tools/bin/helm" template demo deploy/helm/authgate --set existingSecret=authgate-secrets >"$rendered"
kv "$rendered"

echo "== systemd unit"
root="$tools/systemd-root"
rm -rf "$root"
mkdir -p "$root/etc/systemd/system" "$root/usr/local/bin" "$root/bin" "$root/lib/systemd"
cp -r /lib/systemd/system "$root/lib/systemd/"
# verify checks that the commands exist: stand-ins at the unit's paths.
printf '#!/bin/sh\n' >"$root/usr/local/bin/authgate"
printf '#!/bin/sh\n' >"$root/bin/kill"
chmod +x "$root/usr/local/bin/authgate" "$root/bin/kill"
cp deploy/systemd/authgate.service "$root/etc/systemd/system/"
said=$(systemd-analyze verify --man=no --root="$root" /etc/systemd/system/authgate.service 2>&1) || {
  echo "$said"; exit 1; }
if [ -n "$said" ]; then echo "$said"; exit 1; fi
systemd-analyze security --offline=yes --root="$root" --threshold=20 \
  /etc/systemd/system/authgate.service | tail -1

echo "deploy/: all valid"
