#!/usr/bin/env bash
# Checks deploy/observability with promtool: the alert rules parse (PromQL
# included), alerts_test.yaml's scenarios fire exactly the alerts they
# expect, and every query of the Grafana dashboard parses. promtool is
# $PROMTOOL, else the one on PATH, else Debian's (apt-get download
# prometheus, unpacked once under the cache: no root, no service installed).
# The metric names the dashboard and rules use are checked against a real
# scrape by Go tests (docs/observability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
obs=deploy/observability
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

promtool=${PROMTOOL:-$(command -v promtool || true)}
if [[ -z $promtool ]]; then
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/pushsms/promtool
	promtool=$cache/usr/bin/promtool
	if [[ ! -x $promtool ]]; then
		if ! command -v apt-get >/dev/null; then
			echo "check-observability: no promtool (set PROMTOOL, or install Prometheus' promtool)" >&2
			exit 1
		fi
		# A fresh machine may have no package lists yet: update once, then retry.
		(cd "$tmp" && apt-get download prometheus >"$tmp/apt.log" 2>&1) ||
			{ apt-get update -qq >>"$tmp/apt.log" 2>&1 && (cd "$tmp" && apt-get download prometheus >>"$tmp/apt.log" 2>&1); } ||
			{ cat "$tmp/apt.log" >&2; exit 1; }
		dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/deb"
		mkdir -p "$cache/usr/bin"
		cp "$tmp/deb/usr/bin/promtool" "$promtool"
	fi
fi
"$promtool" --version | head -1
"$promtool" check rules "$obs/prometheus/alerts.yaml"
(cd "$obs/prometheus" && "$promtool" test rules alerts_test.yaml)

# Each dashboard query becomes a recording rule, Grafana's variables
# replaced by what they stand for.
python3 - "$obs/grafana/pushsms.json" >"$tmp/dashboard-queries.yaml" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard\n    rules:")
n = 0
for p in d["panels"]:
    for t in p.get("targets", []):
        n += 1
        expr = t["expr"].replace("$__rate_interval", "5m").replace("$short_code", ".+")
        print(f"      - record: dashboard_query_{n}\n        expr: {json.dumps(expr)}")
PY
echo "Checking the dashboard's queries"
"$promtool" check rules "$tmp/dashboard-queries.yaml"
echo "check-observability: ok"
