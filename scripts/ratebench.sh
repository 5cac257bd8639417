#!/usr/bin/env bash
# Runs cmd/ratebench's scenarios one after the other and keeps each JSON
# report under $OUT (default ./var/ratebench/<UTC time>), with the table
# on the terminal. Usage:
#   scripts/ratebench.sh                   # every scenario, issue-5 sizes
#   scripts/ratebench.sh rates many        # some of them
#   DURATION=20s scripts/ratebench.sh rates
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-var/ratebench/$(date -u +%Y%m%dT%H%M%SZ)}
DURATION=${DURATION:-60s}
mkdir -p "$OUT" bin
(cd cmd && go build -o ../bin/ratebench ./ratebench)
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(rates many priority weights failover)
status=0
for s in "${scenarios[@]}"; do
	echo "== $s (backlog $DURATION)"
	rc=0
	./bin/ratebench -scenario "$s" -duration "$DURATION" -json >"$OUT/$s.json" || rc=$?
	[ $rc -eq 0 ] || status=1
	if [ -s "$OUT/$s.json" ]; then
		jq -r '.short_codes // [] | .[] | "\(.short_code)\t\(.contracted)/s\tachieved \(.achieved|.*100|round/100)/s\tviolations \(.violations)"' "$OUT/$s.json" 2>/dev/null | head -20 || true
		jq -r '(.extra // {} | to_entries[] | "\(.key): \(.value)"), (.failures // [] | .[] | "FAIL: \(.)"), (if .pass then "PASS" else empty end)' "$OUT/$s.json" 2>/dev/null || cat "$OUT/$s.json"
	fi
done
echo "reports in $OUT"
exit $status
