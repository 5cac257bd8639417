#!/usr/bin/env bash
# Server-side dry-runs every object of deploy/k8s's overlays against a real
# kube-apiserver + etcd (make k8s-verify), envtest style: what make k8s-lint's
# schema validation cannot see (a selector that does not match its pods, an
# invalid quantity, a port out of range, a name that is not a DNS label) the
# API server refuses here.
#
#   1. builds kube-apiserver and etcd from the Go module proxy, at the versions
#      tools/kubeverify/go.mod pins, into a cache outside the repository
#      (${XDG_CACHE_HOME:-~/.cache}/pushsms/k8s-verify/<versions>/), only when
#      missing: the first run takes minutes, later ones seconds;
#   2. renders each overlay with kustomize (tools/k8s);
#   3. checks that the manifests of tools/kubeverify/testdata/refused pass the
#      strict schema validation of make k8s-lint (otherwise they prove nothing
#      about the API server);
#   4. runs tools/kubeverify: a fresh etcd + kube-apiserver on localhost, the
#      KEDA and CloudNativePG CRDs (the versions deploy/k8s/schemas.sh uses)
#      installed, the overlays' namespaces created, every object applied with
#      dryRun=All; each object of the overlays must be accepted and each file
#      of testdata/refused refused for the reason its "# want:" line names;
#   5. runs tools/kubeverify's tests against the same binaries.
#
# KUBEVERIFY_CACHE overrides the cache directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tooldir="$root/tools/kubeverify"
k8sdir="$root/deploy/k8s"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gomod() { GOWORK=off go -C "$tooldir" "$@"; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

# 1. The binaries, keyed by the versions they are built from.
kube=$(gomod list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd=$(gomod list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
cache=${KUBEVERIFY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pushsms/k8s-verify}/kubernetes-$kube-etcd-$etcd
mkdir -p "$cache"
build() { # build <binary name> <package>
	if [ -x "$cache/$1" ]; then
		echo "ok   $1 cached ($cache/$1)"
		return
	fi
	echo "== building $1 from $2 (first run only; minutes on a small machine)"
	local start
	start=$(date +%s)
	# Built under a temporary name and renamed, so that an interrupted build
	# never leaves a binary the next run would take as complete.
	gomod build -trimpath -o "$cache/$1.tmp" "$2"
	mv "$cache/$1.tmp" "$cache/$1"
	echo "ok   $1 built in $(elapsed "$start") ($(du -h "$cache/$1" | cut -f1))"
}
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build etcd go.etcd.io/etcd/server/v3

# The CRD sources are those schemas.sh generates the lint schemas from.
moddir() {
	(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$1") |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
keda=$(moddir "$(sed -n 's/^KEDA=//p' "$k8sdir/schemas.sh")")
cnpg=$(moddir "$(sed -n 's/^CNPG=//p' "$k8sdir/schemas.sh")")
crds="$keda/config/crd/bases/keda.sh_scaledobjects.yaml,$cnpg/config/crd/bases/postgresql.cnpg.io_clusters.yaml"
for f in ${crds//,/ }; do
	[ -f "$f" ] || { echo "k8s-verify: CRD file $f missing" >&2; exit 1; }
done

# 2. The overlays, rendered.
overlays=()
for overlay in "$k8sdir"/overlays/*/; do
	name=$(basename "$overlay")
	GOWORK=off go -C "$root/tools/k8s" tool kustomize build "$overlay" >"$tmp/$name.yaml"
	overlays+=("$tmp/$name.yaml")
done

# 3. The refused manifests must be ones the schema validation accepts.
shopt -s nullglob
refused=("$tooldir"/testdata/refused/*.yaml)
if [ ${#refused[@]} -eq 0 ]; then
	echo "k8s-verify: no tools/kubeverify/testdata/refused/*.yaml" >&2
	exit 1
fi
location="$k8sdir/schemas/{{ .ResourceKind }}{{ if ne .Group .ResourceAPIVersion }}-{{ .Group }}{{ end }}-{{ .ResourceAPIVersion }}.json"
echo "== testdata/refused against the lint schemas (each must be accepted there)"
if ! GOWORK=off go -C "$root/tools/k8s" tool kubeconform -strict -summary -schema-location "$location" "${refused[@]}"; then
	echo "k8s-verify: a manifest of tools/kubeverify/testdata/refused fails make k8s-lint already; it belongs in deploy/k8s/testdata/broken" >&2
	exit 1
fi

# 4. The dry run.
gomod vet ./...
gomod build -o "$tmp/kubeverify" .
start=$(date +%s)
"$tmp/kubeverify" -bin "$cache" -crds "$crds" -refused "$(IFS=,; echo "${refused[*]}")" "${overlays[@]}"
echo "k8s-verify: ok in $(elapsed "$start") (kubernetes $kube, etcd $etcd)"

# 5. The verifier's own tests, TestDryRun included (it skips without the
# binaries, as in CI).
echo "== tools/kubeverify tests against the same binaries"
KUBEVERIFY_BIN=$cache gomod test -count=1 ./...
