#!/usr/bin/env bash
# make e2e-jaeger: the one-machine platform exports its traces over OTLP to a
# real Jaeger, and the trace of one campaign message, found through Jaeger's
# query API, holds spans from the five services (docs/observability.md, "Traces").
#
# Jaeger is the v1 all-in-one (collector + in-memory storage + query), built
# from its Go module at the version tools/jaeger/go.mod pins, into a cache
# outside the repository that survives runs; it is rebuilt only when that
# go.mod or go.sum changes. The test itself is e2e/jaeger, which skips
# unless JAEGER_BIN is set, so `make test` needs no Jaeger.
#
# Needs PostgreSQL's binaries (as `make test`). Not in CI: the cold build of
# Jaeger takes minutes.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
mod=$repo/tools/jaeger
GO=${GO:-go}
pkg=github.com/jaegertracing/jaeger/cmd/all-in-one

version=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2; exit }' "$mod/go.mod")
if [ -z "$version" ]; then
	echo "e2e-jaeger: no github.com/jaegertracing/jaeger requirement in $mod/go.mod" >&2
	exit 1
fi
# The binary's name carries the version and a digest of the pinned module
# graph: bumping either builds a new one, anything else reuses it.
key=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-12)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pushsms/jaeger
bin=$cache/jaeger-all-in-one-$version-$key

if [ -x "$bin" ]; then
	echo "e2e-jaeger: Jaeger $version from the cache: $bin"
else
	mkdir -p "$cache"
	echo "e2e-jaeger: building Jaeger $version ($pkg) into $bin; the first build takes minutes"
	t0=$(date +%s)
	tmp=$bin.tmp.$$
	trap 'rm -f "$tmp"' EXIT
	# GOWORK=off: a tool module of its own, out of the repository's workspace.
	(cd "$mod" && GOWORK=off nice -n 10 "$GO" build -trimpath \
		-ldflags="-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version" \
		-o "$tmp" "$pkg")
	mv "$tmp" "$bin" # atomic: a build cut short leaves no binary behind
	trap - EXIT
	# The builds of other pins are of no more use: 50 MB each.
	find "$cache" -maxdepth 1 -name 'jaeger-all-in-one-*' ! -name '*.tmp.*' ! -name "${bin##*/}" -delete
	echo "e2e-jaeger: built in $(($(date +%s) - t0))s, $(du -h "$bin" | cut -f1)"
fi

cd "$repo/e2e"
JAEGER_BIN=$bin "$GO" test -count=1 -v -timeout 10m -run '^TestCampaignMessageTraceInJaeger$' ./jaeger
