#!/usr/bin/env bash
# Kannel interop check: Kannel's bearerbox (smsc = emi) logs in to our SMSC
# simulator with OT 60 and submits N messages sent through smsbox's sendsms
# with dlr-mask=31; the simulator must ACK every 51 and Kannel must hand a
# final DLR for each to our dlr-url. Exit 0 on success or when Kannel is
# absent (SKIP), 1 on a mismatch.
#
#   INTEROP_N=1000          messages
#   INTEROP_PARALLEL=64     sendsms requests in flight
#   INTEROP_FAULTS=...      simulator -faults JSON; default delays each 51's
#                           result by 10-50 ms so that Kannel's window fills
#                           and results come back out of order
#   INTEROP_TIMEOUT=120s    wait for ACKs and DLRs
#   INTEROP_PORT_BASE=27400 base of the 127.0.0.1 ports used (base..base+5)
#   INTEROP_INSTALL=1       apt-get install -y kannel when missing
#   INTEROP_KEEP=1          keep the work directory (logs, kannel.conf)
#   INTEROP_KANNEL_LOG_LEVEL=1  0 logs every EMI frame in smsc-sim-link.log
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${INTEROP_N:-1000}
PAR=${INTEROP_PARALLEL:-64}
FAULTS=${INTEROP_FAULTS:-'{"ack_delay":"10ms","ack_jitter":"40ms"}'}
TIMEOUT=${INTEROP_TIMEOUT:-120s}
BASE=${INTEROP_PORT_BASE:-27400}
UCP_PORT=$BASE HTTP_PORT=$((BASE + 1)) SINK_PORT=$((BASE + 2))
ADMIN_PORT=$((BASE + 3)) BOX_PORT=$((BASE + 4)) SENDSMS_PORT=$((BASE + 5))
CODE=36000 SECRET=secret
KLOG=${INTEROP_KANNEL_LOG_LEVEL:-1}

if ! command -v bearerbox >/dev/null || ! command -v smsbox >/dev/null; then
	if [[ ${INTEROP_INSTALL:-0} == 1 ]]; then
		apt-get update -q && apt-get install -y -q kannel
	else
		echo "SKIP: kannel not installed (apt-get install kannel)"
		exit 0
	fi
fi

WORK=$(mktemp -d -t pushsms-interop.XXXXXX)
PIDS=()
cleanup() {
	local rc=$?
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ $rc != 0 || ${INTEROP_KEEP:-0} == 1 ]]; then
		echo "logs and kannel.conf kept in $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

wait_port() { # host:port what
	local i
	for ((i = 0; i < 150; i++)); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	echo "interop: $2 did not listen on $1 (see $WORK)" >&2
	return 1
}

echo "== building smsc-sim and the interop helper"
(cd "$ROOT/cmd" && go build -o "$WORK/smsc-sim" ./smsc-sim)
(cd "$ROOT/scripts/interop" && GOWORK=off go build -o "$WORK/interop" ./interop.go)

START=$(date +%s)
echo "== starting smsc-sim (UCP 127.0.0.1:$UCP_PORT, HTTP 127.0.0.1:$HTTP_PORT)"
# Rate high enough that Kannel, which does not pace by itself here, is never throttled.
"$WORK/smsc-sim" -addr "127.0.0.1:$UCP_PORT" -http-addr "127.0.0.1:$HTTP_PORT" \
	-accounts "$CODE:$SECRET:100000:100" -dr-delay 100ms -dr-delivered 9 -dr-failed 1 -dr-buffered 0.2 \
	-dr-delay-dist uniform -dr-delay-max 2s -faults "$FAULTS" -log-format text >"$WORK/smsc-sim.log" 2>&1 &
PIDS+=($!)
"$WORK/interop" sink -addr "127.0.0.1:$SINK_PORT" >"$WORK/sink.log" 2>&1 &
PIDS+=($!)
wait_port "127.0.0.1:$UCP_PORT" smsc-sim
wait_port "127.0.0.1:$SINK_PORT" "DLR sink"

cat >"$WORK/kannel.conf" <<CONF
group = core
admin-port = $ADMIN_PORT
admin-password = interop
admin-interface = 127.0.0.1
smsbox-port = $BOX_PORT
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
wdp-interface-name = 127.0.0.1
log-file = "$WORK/bearerbox.log"
log-level = $KLOG
access-log = "$WORK/access.log"
store-type = spool
store-location = "$WORK/spool"
dlr-storage = internal

# smsc-username + smsc-password make Kannel open the session with OT 60.
group = smsc
smsc = emi
smsc-id = sim
host = 127.0.0.1
port = $UCP_PORT
smsc-username = $CODE
smsc-password = $SECRET
my-number = $CODE
keepalive = 30
flow-control = 0
window = 100
wait-ack = 60
wait-ack-expire = 0
idle-timeout = 0
log-file = "$WORK/smsc-sim-link.log"
log-level = $KLOG

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = $BOX_PORT
sendsms-port = $SENDSMS_PORT
sendsms-interface = 127.0.0.1
log-file = "$WORK/smsbox.log"
log-level = $KLOG
access-log = "$WORK/smsbox-access.log"

group = sendsms-user
username = interop
password = interop
max-messages = 1

group = sms-service
keyword = default
text = "ok"
max-messages = 0
catch-all = true
CONF
mkdir -p "$WORK/spool"

echo "== starting bearerbox and smsbox"
bearerbox "$WORK/kannel.conf" >"$WORK/bearerbox.out" 2>&1 &
PIDS+=($!)
wait_port "127.0.0.1:$BOX_PORT" bearerbox
smsbox "$WORK/kannel.conf" >"$WORK/smsbox.out" 2>&1 &
PIDS+=($!)
wait_port "127.0.0.1:$SENDSMS_PORT" smsbox

# Wait for the OT 60 so the first messages do not queue behind the login.
for ((i = 0; ; i++)); do
	if curl -fsS "http://127.0.0.1:$HTTP_PORT/stats" | grep -q "\"sessions\": [1-9]"; then break; fi
	if ((i > 100)); then
		echo "interop: Kannel did not log in to the simulator (see $WORK)" >&2
		exit 1
	fi
	sleep 0.2
done

echo "== sending $N messages via sendsms ($PAR in parallel, dlr-mask=31)"
"$WORK/interop" send -url "http://127.0.0.1:$SENDSMS_PORT/cgi-bin/sendsms" -user interop -pass interop \
	-from "$CODE" -n "$N" -parallel "$PAR" -dlr-url "http://127.0.0.1:$SINK_PORT/dlr"

echo "== waiting for $N ACKs and $N final DLRs (timeout $TIMEOUT)"
"$WORK/interop" wait -stats "http://127.0.0.1:$HTTP_PORT/stats" -count "http://127.0.0.1:$SINK_PORT/count" \
	-account "$CODE" -n "$N" -timeout "$TIMEOUT" -start "$START"
