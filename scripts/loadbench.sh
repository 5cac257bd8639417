#!/usr/bin/env bash
# Runs cmd/loadbench once the machine is quiet: the figures are the
# machine's, so a run beside another benchmark measures the other one too.
# The report goes to stdout and, as JSON, to var/loadbench/<UTC time>.json.
#
#   scripts/loadbench.sh                                   # 4 short codes, 2 000 messages, unthrottled, with Kannel
#   scripts/loadbench.sh -shortcodes 2 -rate 50 -duration 10s
#   LOADBENCH_MAX_LOAD=1.5   wait until the 1-minute load average is below this
#   LOADBENCH_WAIT=300       seconds to wait for it at most (then run anyway, and say so)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MAX_LOAD=${LOADBENCH_MAX_LOAD:-1.5}
WAIT=${LOADBENCH_WAIT:-300}

for ((i = 0; i < WAIT; i += 10)); do
	load=$(cut -d' ' -f1 /proc/loadavg)
	if awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l < m) }'; then break; fi
	echo "loadbench: load average $load ≥ $MAX_LOAD, waiting" >&2
	sleep 10
done

mkdir -p "$ROOT/var/loadbench"
OUT="$ROOT/var/loadbench/$(date -u +%Y%m%dT%H%M%SZ).json"
ARGS=("$@")
if ((${#ARGS[@]} == 0)); then
	ARGS=(-shortcodes 4 -messages 2000 -unthrottled -kannel)
fi
# The side by side needs Kannel (Debian's package), installed here as CI
# installs PostgreSQL: a fresh machine runs it with no step of its own.
if [[ " ${ARGS[*]} " == *" -kannel "* ]] && ! command -v bearerbox >/dev/null; then
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
		echo "loadbench: -kannel needs Kannel 1.4.5: apt-get install kannel" >&2
		exit 1
	fi
	echo "loadbench: installing Kannel (apt-get install kannel)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq kannel >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq kannel >/dev/null; }
fi
cd "$ROOT/cmd"
go run ./loadbench "${ARGS[@]}" -json "$OUT"
echo "loadbench: JSON report in $OUT" >&2
