#!/usr/bin/env bash
# Validates deploy/k8s offline and strictly (make k8s-lint):
#   1. every overlay renders with kustomize;
#   2. kubeconform checks each rendered object against the committed schemas
#      of schemas/ (make k8s-schemas): an unknown field, a wrong type or a
#      kind without a schema is an error; there is no remote schema location
#      and no -ignore-missing-schemas;
#   3. schemas/ holds exactly the kinds the overlays use (none missing, none
#      left over from a kind no longer used);
#   4. each file of testdata/broken/ must be rejected by the same check, and
#      for the reason its "# want:" line names, so a check that lets
#      everything through (or fails for another reason) fails the lint.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The tools' versions are pinned in tools/k8s/go.mod; `go tool` builds them
# once and caches them.
tool() { GOWORK=off go -C "$root/tools/k8s" tool "$@"; }

# One file per kind: <kind>-<version>.json for the core group,
# <kind>-<group>-<version>.json otherwise (tools/k8s/schemagen).
location="$here/schemas/{{ .ResourceKind }}{{ if ne .Group .ResourceAPIVersion }}-{{ .Group }}{{ end }}-{{ .ResourceAPIVersion }}.json"
validate() { tool kubeconform -strict -summary -schema-location "$location" "$@"; }

status=0
for overlay in "$here"/overlays/*/; do
	name=$(basename "$overlay")
	echo "== overlay $name"
	if ! tool kustomize build "$overlay" >"$tmp/$name.yaml"; then
		echo "FAIL: overlay $name does not render" >&2
		status=1
		continue
	fi
	if ! validate "$tmp/$name.yaml"; then
		echo "FAIL: overlay $name does not validate" >&2
		status=1
	fi
done

echo "== schemas/ against the kinds used"
GOWORK=off go -C "$root/tools/k8s" run ./schemagen -list "$tmp"/*.yaml >"$tmp/want"
(cd "$here/schemas" && ls -- *.json) | sort >"$tmp/have"
sort -o "$tmp/want" "$tmp/want"
if ! diff -u --label 'kinds the overlays use' --label schemas/ "$tmp/want" "$tmp/have"; then
	echo "FAIL: schemas/ is out of step with the overlays: run make k8s-schemas" >&2
	status=1
else
	echo "ok   $(wc -l <"$tmp/want") kinds, one schema each"
fi

echo "== broken manifests (each must be rejected)"
shopt -s nullglob
broken=("$here"/testdata/broken/*.yaml)
if [ ${#broken[@]} -eq 0 ]; then
	echo "FAIL: no testdata/broken/*.yaml" >&2
	status=1
fi
for f in "${broken[@]}"; do
	name=$(basename "$f")
	want=$(sed -n 's/^# want: //p' "$f")
	if [ -z "$want" ]; then
		echo "FAIL: $name has no '# want: <part of the error>' line" >&2
		status=1
		continue
	fi
	if out=$(validate "$f" 2>&1); then
		echo "FAIL: $name was accepted" >&2
		echo "$out" >&2
		status=1
	elif ! grep -qF -- "$want" <<<"$out"; then
		echo "FAIL: $name was rejected, but not for \"$want\":" >&2
		echo "$out" >&2
		status=1
	else
		echo "ok   $name rejected: $(grep -F -- "$want" <<<"$out" | head -n 1 | sed 's/^.* - //')"
	fi
done
exit $status
