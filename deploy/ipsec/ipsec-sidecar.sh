#!/usr/bin/env bash
# The strongSwan sidecar of the smsc-link pod (docs/ipsec.md): renders
# swanctl.conf.tmpl and strongswan.conf.tmpl, puts our inner address on lo
# and an unreachable route to the SMSC network (fail closed), runs charon,
# loads the connection, and reloads the credentials when the mounted Secret
# changes. `make test-ipsec` runs this same script for the platform's end.
#
# Environment: the IPSEC_* variables of swanctl.conf.tmpl and
# strongswan.conf.tmpl; IPSEC_RELOAD_INTERVAL (seconds between checks of
# the Secret, default 60); CHARON (default Debian's /usr/lib/ipsec/charon).
set -euo pipefail

: "${IPSEC_REMOTE_ADDRS:?}" "${IPSEC_LOCAL_ID:?}" "${IPSEC_REMOTE_ID:?}"
: "${IPSEC_LOCAL_TS:?}" "${IPSEC_REMOTE_TS:?}" "${IPSEC_CERT_DIR:?}"
export IPSEC_LOCAL_ADDRS=${IPSEC_LOCAL_ADDRS:-%any}
export IPSEC_ENCAP=${IPSEC_ENCAP:-no}
export IPSEC_IKE_PROPOSALS=${IPSEC_IKE_PROPOSALS:-aes256gcm16-prfsha384-ecp384}
export IPSEC_ESP_PROPOSALS=${IPSEC_ESP_PROPOSALS:-aes256gcm16-ecp384}
export IPSEC_START_ACTION=${IPSEC_START_ACTION:-start}
export IPSEC_DPD_ACTION=${IPSEC_DPD_ACTION:-restart}
export IPSEC_CLOSE_ACTION=${IPSEC_CLOSE_ACTION:-start}
export IPSEC_KERNEL_PLUGINS=${IPSEC_KERNEL_PLUGINS:-kernel-netlink}
export IPSEC_RUN_DIR=${IPSEC_RUN_DIR:-/run/strongswan}
templates=${IPSEC_TEMPLATES:-$(dirname "$0")}
interval=${IPSEC_RELOAD_INTERVAL:-60}
charon_bin=${CHARON:-/usr/lib/ipsec/charon}

# Only these variables are substituted: a "$" elsewhere stays as written.
# shellcheck disable=SC2016 # envsubst's list of names, not expansions
vars='${IPSEC_LOCAL_ADDRS} ${IPSEC_REMOTE_ADDRS} ${IPSEC_LOCAL_ID} ${IPSEC_REMOTE_ID}
${IPSEC_LOCAL_TS} ${IPSEC_REMOTE_TS} ${IPSEC_CERT_DIR} ${IPSEC_ENCAP} ${IPSEC_IKE_PROPOSALS}
${IPSEC_ESP_PROPOSALS} ${IPSEC_START_ACTION} ${IPSEC_DPD_ACTION} ${IPSEC_CLOSE_ACTION}
${IPSEC_KERNEL_PLUGINS} ${IPSEC_RUN_DIR}'
# swanctl reads credentials from these folders next to swanctl.conf; those
# we do not use must exist all the same, or it logs an error for each.
mkdir -p "$IPSEC_RUN_DIR"/{x509,x509ca,x509ocsp,x509aa,x509ac,x509crl,pubkey,private,rsa,ecdsa,bliss,pkcs8,pkcs12}
# Our certificate, its key and the CA are loaded from those folders (not
# named in swanctl.conf, which would pin them to the connection): links to
# the mounted Secret's files, which kubelet's updates keep current.
# Every ca*.crt of the Secret is trusted: during a change of the operator's
# CA the Secret holds both (ca.crt, ca-next.crt), one certificate a file.
link_creds() {
	ln -sfn "$IPSEC_CERT_DIR/tls.crt" "$IPSEC_RUN_DIR/x509/tls.crt"
	ln -sfn "$IPSEC_CERT_DIR/tls.key" "$IPSEC_RUN_DIR/private/tls.key"
	rm -f "$IPSEC_RUN_DIR"/x509ca/*
	for ca in "$IPSEC_CERT_DIR"/ca*.crt; do
		[ -e "$ca" ] && ln -sfn "$ca" "$IPSEC_RUN_DIR/x509ca/${ca##*/}"
	done
}
link_creds
envsubst "$vars" <"$templates/swanctl.conf.tmpl" >"$IPSEC_RUN_DIR/swanctl.conf"
envsubst "$vars" <"$templates/strongswan.conf.tmpl" >"$IPSEC_RUN_DIR/strongswan.conf"
export STRONGSWAN_CONF=$IPSEC_RUN_DIR/strongswan.conf
uri=unix://$IPSEC_RUN_DIR/charon.vici
swanctl() { command swanctl "$@" --uri "$uri"; }

# Our inner address is smsc-link's source address towards the SMSC: charon's
# route in table 220 (rule priority 220) names it while the CHILD_SA is up.
# Without the SA, that route is gone and the main table's unreachable route
# answers ENETUNREACH: never the pod's default route, in clear.
ip link set lo up
ip address replace "${IPSEC_LOCAL_TS%/*}/32" dev lo
IFS=',' read -ra nets <<<"$IPSEC_REMOTE_TS"
for net in "${nets[@]}"; do
	ip route replace unreachable "${net// /}"
done

# charon leaves its socket behind when killed: a stale one would make the
# wait below succeed before charon listens.
rm -f "$IPSEC_RUN_DIR/charon.vici"
# Likewise its pid file (path fixed at build time): after a restart of the
# container, the old pid may be a live process of the new one, and charon
# would refuse to start ("already running").
rm -f /var/run/charon.pid
"$charon_bin" &
charon=$!
stop() {
	# Say goodbye to the operator's gateway (DELETE) rather than let its DPD
	# find out, then stop charon.
	swanctl --terminate --ike smsc --timeout 3 >/dev/null 2>&1 || true
	kill -TERM "$charon" 2>/dev/null || true
	wait "$charon" 2>/dev/null || true
	exit 0
}
trap stop TERM INT

for _ in $(seq 100); do
	[ -S "$IPSEC_RUN_DIR/charon.vici" ] && break
	kill -0 "$charon" 2>/dev/null || { echo "ipsec-sidecar: charon exited" >&2; exit 1; }
	sleep 0.1
done
swanctl --load-all --file "$IPSEC_RUN_DIR/swanctl.conf"

# A rotated Secret: kubelet swaps the mounted files (no subPath mount, or
# they never change). Load the new credentials, then re-authenticate: the
# new IKE_SA is built with them before the old one goes (make_before_break).
sum() { (cd "$IPSEC_CERT_DIR" && ls ca*.crt && cat tls.crt tls.key ca*.crt) 2>&1 | sha256sum; }
last=$(sum)
while kill -0 "$charon" 2>/dev/null; do
	sleep "$interval" &
	wait $! || true
	now=$(sum)
	if [ "$now" != "$last" ]; then
		echo "ipsec-sidecar: credentials changed, reloading and re-authenticating" >&2
		link_creds
		swanctl --load-creds --clear --file "$IPSEC_RUN_DIR/swanctl.conf" &&
			swanctl --rekey --ike smsc --reauth || echo "ipsec-sidecar: reload failed" >&2
		last=$now
	fi
done
wait "$charon"
