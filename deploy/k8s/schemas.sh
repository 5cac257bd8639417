#!/usr/bin/env bash
# Regenerates schemas/ (make k8s-schemas): the strict JSON schemas lint.sh
# validates against, for the kinds the overlays use, from the sources the
# cluster runs: the Kubernetes OpenAPI document and the KEDA and
# CloudNativePG CRDs, fetched as Go modules through the Go module proxy
# (GOPROXY) into the module cache. Change a version here when the cluster's
# changes, run it, and commit schemas/.
set -euo pipefail

KUBERNETES=k8s.io/kubernetes@v1.36.3
KEDA=github.com/kedacore/keda/v2@v2.21.0
CNPG=github.com/cloudnative-pg/cloudnative-pg@v1.29.0

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The module's directory in the module cache (downloaded if missing). Run
# outside any module, so that no go.mod is touched.
moddir() {
	(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$1") |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
k8s=$(moddir "$KUBERNETES")
keda=$(moddir "$KEDA")
cnpg=$(moddir "$CNPG")
for d in "$k8s" "$keda" "$cnpg"; do
	[ -n "$d" ] && [ -d "$d" ] || { echo "schemas.sh: a module did not download" >&2; exit 1; }
done

# The kinds used are the kinds the overlays render.
for overlay in "$here"/overlays/*/; do
	GOWORK=off go -C "$root/tools/k8s" tool kustomize build "$overlay" >"$tmp/$(basename "$overlay").yaml"
done
GOWORK=off go -C "$root/tools/k8s" run ./schemagen \
	-kubernetes "$k8s" \
	-crds "$keda/config/crd/bases,$cnpg/config/crd/bases" \
	-out "$here/schemas" \
	"$tmp"/*.yaml
