#!/usr/bin/env bash
# make test-ipsec: smsc-link reaches the SMSC simulator through an IKEv2/ESP
# tunnel run by Debian's strongSwan, and nothing but IKE and ESP crosses the
# link (docs/ipsec.md, "How the test proves it").
#
#   namespace "smsc"      smsc-sim on 198.19.2.1:5000 (lo), charon (responder)
#   namespace "platform"  smsc-link + an embedded NATS (e2e/ipsec/platformside),
#                         charon (initiator) started by deploy/ipsec/ipsec-sidecar.sh
#   link                  veth 198.18.0.1 (platform) <-> 198.18.0.2 (smsc)
#
# Both charons run the production templates of deploy/ipsec with
# certificates made here (ECDSA P-384, one throw-away CA). The kernels we
# test on have no ESP, so ESP is strongSwan's userspace one (kernel-libipsec,
# ESP in UDP/4500). It checks:
#   1. the CHILD_SA comes up;
#   2. a UCP login (OT 60), a submit (OT 51, ACKed) and its delivery report
#      (OT 53) go through the tunnel: smsc-link's reports and the simulator's
#      counters say so, and a capture inside the tunnel sees them;
#   3. a certificate rotation (the Secret's files swapped as kubelet does)
#      is picked up by the sidecar and re-authenticated without a new UCP
#      login, and a CHILD_SA rekey uses ECP-384 (PFS);
#   4. a capture on the veth sees only IKE (udp/500, udp/4500 with the
#      non-ESP marker) and ESP in UDP/4500: no TCP, no UCP, not even ARP;
#   5. with the tunnel terminated the SMSC's inner address is unreachable
#      (EHOSTUNREACH, from the sidecar's unreachable route) although the
#      platform has a default route to the link, as a pod does: it fails
#      closed.
# Root only (namespaces, charon); anyone else gets a SKIP and exit 0.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: make test-ipsec needs root (network namespaces, two charons, tcpdump); run it as root"
	exit 0
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
t0=$(date +%s%N)
elapsed_ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
log() { printf '%s  %s\n' "$(date +%T.%3N)" "$*"; }
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# --- packages ------------------------------------------------------------
pkgs=(strongswan-charon strongswan-swanctl libcharon-extra-plugins tcpdump)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } ||
		fail "apt-get install ${missing[*]}"
fi
for tool in envsubst openssl ip unshare curl; do
	command -v "$tool" >/dev/null || fail "$tool not found"
done
[ -x /usr/lib/ipsec/charon ] || fail "/usr/lib/ipsec/charon not found (strongswan-charon)"
[ -f /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || fail "kernel-libipsec plugin not found (libcharon-extra-plugins)"

# --- state and cleanup ---------------------------------------------------
tmp=$(mktemp -d /tmp/test-ipsec.XXXXXX)
ns_s=ipsec-smsc-$$
ns_p=ipsec-plat-$$
veth_p=vp$$
veth_s=vs$$
pids=()
keep=0
cleanup() {
	rc=$?
	set +e
	# Newest first: tcpdumps flush, then smsc-sim, then the charons.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null
	done
	# Up to 25 s each: platformside gives smsc-link 20 s to drain.
	for pid in "${pids[@]}"; do
		for _ in $(seq 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	ip netns del "$ns_p" 2>/dev/null
	ip netns del "$ns_s" 2>/dev/null
	if [ "$rc" -ne 0 ] || [ "$keep" -ne 0 ]; then
		echo "logs and captures kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- binaries (once, into the temp dir) ------------------------------------
log "building smsc-link, smsc-sim, platformside"
mkdir -p "$tmp/bin"
go -C "$repo/services/smsc-link" build -o "$tmp/bin/smsc-link" ./cmd/smsc-link
go -C "$repo/cmd" build -o "$tmp/bin/smsc-sim" ./smsc-sim
go -C "$repo/e2e" build -o "$tmp/bin/platformside" ./ipsec/platformside

# --- certificates: one CA, one ECDSA P-384 certificate per end -------------
# In production these come from a Secret (kubernetes.io/tls: tls.crt,
# tls.key, ca.crt), the layout made here.
mkcert() { # name dir
	mkdir -p "$2"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes \
		-keyout "$2/tls.key" -out "$tmp/pki/$1.csr" -subj "/O=pushsms test-ipsec/CN=$1" 2>/dev/null
	openssl x509 -req -in "$tmp/pki/$1.csr" -CA "$tmp/pki/ca.crt" -CAkey "$tmp/pki/ca.key" \
		-CAcreateserial -days 1 -sha384 -out "$2/tls.crt" \
		-extfile <(printf 'subjectAltName=DNS:%s\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' "$1") 2>/dev/null
	cp "$tmp/pki/ca.crt" "$2/ca.crt"
}
mkdir -p "$tmp/pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes -days 1 -sha384 \
	-keyout "$tmp/pki/ca.key" -out "$tmp/pki/ca.crt" -subj "/O=pushsms test-ipsec/CN=test-ipsec CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
# A mounted Secret as kubelet lays it out: the files are links through
# ..data to a versioned directory, and an update swaps ..data at once.
secret_version() { # dir version
	ln -sfn "$2" "$1/..data.tmp" && mv -T "$1/..data.tmp" "$1/..data"
	for f in tls.crt tls.key ca.crt; do ln -sfn "..data/$f" "$1/$f"; done
}
mkcert platform.ipsec.test "$tmp/platform/secret/..v1"
secret_version "$tmp/platform/secret" ..v1
mkcert smsc.ipsec.test "$tmp/smsc/secret/..v1"
secret_version "$tmp/smsc/secret" ..v1

# --- namespaces and the link ----------------------------------------------
t_up=$(date +%s%N)
ip netns add "$ns_s"
ip netns add "$ns_p"
for ns in "$ns_s" "$ns_p"; do
	# Router solicitations and the like would cross the link in clear.
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip -n "$ns" link set lo up
done
ip link add "$veth_p" netns "$ns_p" type veth peer name "$veth_s" netns "$ns_s"
ip -n "$ns_p" address add 198.18.0.1/24 dev "$veth_p"
ip -n "$ns_s" address add 198.18.0.2/24 dev "$veth_s"
ip -n "$ns_p" link set "$veth_p" up
ip -n "$ns_s" link set "$veth_s" up
# Static neighbours: no ARP on the wire, so the capture check can demand
# that every frame is IKE or ESP.
mac_p=$(ip -n "$ns_p" -o link show "$veth_p" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
mac_s=$(ip -n "$ns_s" -o link show "$veth_s" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
ip -n "$ns_p" neigh replace 198.18.0.2 lladdr "$mac_s" dev "$veth_p" nud permanent
ip -n "$ns_s" neigh replace 198.18.0.1 lladdr "$mac_p" dev "$veth_s" nud permanent
# The platform has a default route to the link, as a pod has to its node:
# only the unreachable route of ipsec-sidecar.sh stands between smsc-link
# and a cleartext packet when the tunnel is down.
ip -n "$ns_p" route add default via 198.18.0.2

# Everything crossing the link, from the first IKE packet on.
ip netns exec "$ns_p" tcpdump -i "$veth_p" --immediate-mode -nn -U -w "$tmp/outer.pcap" 2>"$tmp/tcpdump-outer.log" &
pids+=($!)
captures=($!)
wait_for() { # what, timeout in tenths, command...
	local what=$1 n=$2
	shift 2
	for _ in $(seq "$n"); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	fail "$what"
}
wait_for "tcpdump on $veth_p did not start" 100 grep -q 'listening on' "$tmp/tcpdump-outer.log"

# --- the two charons -------------------------------------------------------
# Debian's charon writes its pid file under /run: each one gets a private
# /run (mount namespace + tmpfs), its control socket in the temp dir. It
# then runs with only the capabilities the sidecar container gets
# (deploy/k8s/components/ipsec: NET_ADMIN, NET_BIND_SERVICE), so a missing
# one fails here rather than in the cluster.
charon_in() { # ns side env...
	local ns=$1 side=$2
	shift 2
	# shellcheck disable=SC2016 # $0 is expanded by the inner bash
	ip netns exec "$ns" unshare -m --propagation private \
		env -i PATH="$PATH" "$@" \
		IPSEC_RUN_DIR="$tmp/$side/run" IPSEC_CERT_DIR="$tmp/$side/secret" \
		IPSEC_TEMPLATES="$repo/deploy/ipsec" \
		IPSEC_KERNEL_PLUGINS="kernel-libipsec kernel-netlink" IPSEC_ENCAP=yes \
		bash -c 'mount -t tmpfs -o size=1m tmpfs /run &&
			exec setpriv --bounding-set -all,+net_admin,+net_bind_service --inh-caps -all "$0"' \
		"$repo/deploy/ipsec/ipsec-sidecar.sh" \
		>"$tmp/charon-$side.log" 2>&1 &
	pids+=($!)
}
# The operator's end: answers, never dials.
charon_in "$ns_s" smsc \
	IPSEC_LOCAL_ADDRS=198.18.0.2 IPSEC_REMOTE_ADDRS=198.18.0.1 \
	IPSEC_LOCAL_ID=smsc.ipsec.test IPSEC_REMOTE_ID=platform.ipsec.test \
	IPSEC_LOCAL_TS=198.19.2.1/32 IPSEC_REMOTE_TS=198.19.1.1/32 \
	IPSEC_START_ACTION=none IPSEC_DPD_ACTION=clear IPSEC_CLOSE_ACTION=none
wait_for "the smsc charon did not load its connection (charon-smsc.log)" 100 \
	grep -q 'loaded connection .smsc.' "$tmp/charon-smsc.log"
# Ours: production's settings, apart from the ESP backend.
charon_in "$ns_p" platform \
	IPSEC_LOCAL_ADDRS=198.18.0.1 IPSEC_REMOTE_ADDRS=198.18.0.2 \
	IPSEC_LOCAL_ID=platform.ipsec.test IPSEC_REMOTE_ID=smsc.ipsec.test \
	IPSEC_LOCAL_TS=198.19.1.1/32 IPSEC_REMOTE_TS=198.19.2.1/32 IPSEC_RELOAD_INTERVAL=1
# swanctl with the platform charon's strongswan.conf (its swanctl section
# loads only the plugins it needs) and control socket.
swan_p() { ip netns exec "$ns_p" env STRONGSWAN_CONF="$tmp/platform/run/strongswan.conf" swanctl "$@" --uri "unix://$tmp/platform/run/charon.vici"; }
sas() { swan_p --list-sas --ike smsc 2>/dev/null; }
child_up() { sas | grep -q 'ucp: .*INSTALLED'; }
# The sidecar container's startup probe (deploy/k8s/components/ipsec).
probe() { swan_p --list-conns | grep -q '^smsc:'; }
wait_for "the sidecar's startup probe fails (charon-platform.log)" 100 probe
wait_for "no CHILD_SA after 15 s (charon-platform.log, charon-smsc.log)" 150 child_up
bringup_ms=$(elapsed_ms "$t_up")
sa_line=$(sas | grep -E 'smsc: #|ucp: #' | sed 's/^ *//' | tr '\n' ' ')
ike_alg=$(sas | grep -o 'AES_GCM_16-256/PRF[^ ]*' | head -n 1)
esp_alg=$(sas | grep -o 'ESP:[^ ]*' | head -n 1)
log "tunnel up in ${bringup_ms} ms: $sa_line"

# Inside the tunnel: what smsc-link and the SMSC actually said to each other
# (UCP's port on any interface of the platform: ipsec0, since the veth
# capture must show none). --immediate-mode: a capture stopped within a
# second must still hold its packets.
ip netns exec "$ns_p" tcpdump -i any --immediate-mode -nn -U -w "$tmp/inner.pcap" "tcp port 5000" 2>"$tmp/tcpdump-inner.log" &
pids+=($!)
captures+=($!)
wait_for "tcpdump inside the tunnel did not start" 100 grep -q 'listening on' "$tmp/tcpdump-inner.log"

# --- the SMSC simulator on its inner address -------------------------------
password=ipsec-$RANDOM$RANDOM
ip netns exec "$ns_s" "$tmp/bin/smsc-sim" -addr 198.19.2.1:5000 -http-addr 127.0.0.1:7778 \
	-accounts "36000:$password:10" -dr-delay 50ms -log-format text >"$tmp/smsc-sim.log" 2>&1 &
pids+=($!)
wait_for "smsc-sim did not start (smsc-sim.log)" 100 \
	ip netns exec "$ns_s" curl -sf http://127.0.0.1:7778/stats

# --- smsc-link through the tunnel ------------------------------------------
# platformside sends one message, then one more per line on its stdin: the
# second goes after a certificate rotation, on the same UCP session.
log "smsc-link: login, one submit, its delivery report"
mkdir -p "$tmp/platform/work"
mkfifo "$tmp/more"
ip netns exec "$ns_p" env UCP_PASSWORD="$password" "$tmp/bin/platformside" \
	-smsc-link "$tmp/bin/smsc-link" -smsc-addr 198.19.2.1:5000 -short-code 36000 \
	-dir "$tmp/platform/work" -timeout 120s -more \
	<"$tmp/more" >"$tmp/platformside.out" 2>"$tmp/platformside.log" &
driver=$!
pids+=("$driver")
exec 7>"$tmp/more"
lines() { [ -f "$tmp/platformside.out" ] && [ "$(wc -l <"$tmp/platformside.out")" -ge "$1" ]; }
wait_message() { # n
	for _ in $(seq 300); do
		lines "$1" && return 0
		kill -0 "$driver" 2>/dev/null || break
		sleep 0.1
	done
	cat "$tmp/platformside.log" >&2
	fail "message $1: smsc-link did not log in, submit and get its DR through the tunnel"
}
wait_message 1
result=$(sed -n 1p "$tmp/platformside.out")
log "smsc-link: $result"
field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | cut -d: -f2; }
stats() { ip netns exec "$ns_s" curl -sf http://127.0.0.1:7778/stats; }
stat() { grep -o "\"$1\": *[0-9]*" <<<"$stats" | head -n 1 | grep -o "[0-9]*$"; }
stats=$(stats)
[ "$(stat logins)" -eq 1 ] || fail "the simulator saw $(stat logins) logins, want 1: $stats"
[ "$(stat accepted)" -eq 1 ] || fail "the simulator ACKed $(stat accepted) submits, want 1: $stats"
[ "$(stat drs_acked)" -eq 1 ] || fail "smsc-link ACKed $(stat drs_acked) DRs, want 1: $stats"

# --- certificate rotation, UCP session kept ------------------------------------
# A new key and certificate for the platform, swapped in as kubelet updates
# a Secret; ipsec-sidecar.sh notices (IPSEC_RELOAD_INTERVAL=1 here), loads
# them and re-authenticates make-before-break: a new IKE_SA, signed with the
# new key, and the UCP session goes on through the new CHILD_SA.
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f'; }
old_serial=$(serial "$tmp/platform/secret/tls.crt")
mkcert platform.ipsec.test "$tmp/platform/secret/..v2"
new_serial=$(serial "$tmp/platform/secret/..v2/tls.crt")
ike_old=$(sas | grep -o 'smsc: #[0-9]*' | head -n 1)
t_rot=$(date +%s%N)
secret_version "$tmp/platform/secret" ..v2
reauthed() {
	local now
	now=$(sas)
	grep -q 'smsc: #[0-9]*, ESTABLISHED' <<<"$now" && ! grep -q "^ *$ike_old," <<<"$now" &&
		grep -q 'ucp: .*INSTALLED' <<<"$now"
}
wait_for "no re-authentication after the certificate rotation (charon-platform.log)" 150 reauthed
rotation_ms=$(elapsed_ms "$t_rot")
ike_new=$(sas | grep -o 'smsc: #[0-9]*' | head -n 1)
loaded=$(swan_p --list-certs 2>/dev/null | grep -io 'serial: *[0-9a-f:]*' | tr -d ': ' | sed 's/serial//I' | tr 'A-F' 'a-f' | paste -sd ' ')
grep -qw "$new_serial" <<<"$loaded" || fail "the new certificate ($new_serial) is not loaded: $loaded"
! grep -qw "$old_serial" <<<"$loaded" || fail "the old certificate ($old_serial) is still loaded: $loaded"
auths=$(grep -c "authentication of 'platform.ipsec.test' with ECDSA.* successful" "$tmp/charon-smsc.log" || true)
[ "$auths" -ge 2 ] || fail "the SMSC's end authenticated the platform $auths times, want 2 (before and after the rotation)"
log "rotation: certificate $old_serial -> $new_serial, IKE_SA ${ike_old#smsc: } -> ${ike_new#smsc: } in ${rotation_ms} ms"
echo next >&7
wait_message 2
result2=$(sed -n 2p "$tmp/platformside.out")
log "smsc-link after the rotation: $result2"
exec 7>&-
wait "$driver" || fail "platformside: $(cat "$tmp/platformside.log")"
stats=$(stats)
[ "$(stat logins)" -eq 1 ] || fail "the rotation cost a UCP login: the simulator saw $(stat logins), want 1: $stats"
[ "$(stat accepted)" -eq 2 ] || fail "the simulator ACKed $(stat accepted) submits, want 2: $stats"
[ "$(stat drs_acked)" -eq 2 ] || fail "smsc-link ACKed $(stat drs_acked) DRs, want 2: $stats"

# --- a CHILD_SA rekey: new ESP keys from a fresh ECP-384 exchange (PFS) ------
# The first CHILD_SA comes with IKE_AUTH, without a DH of its own: only a
# rekey shows that the ESP proposal's group is agreed.
swan_p --rekey --child ucp >/dev/null
pfs() { sas | grep -q 'ucp: .*INSTALLED.*ESP:AES_GCM_16-256/ECP_384'; }
wait_for "the CHILD_SA rekey did not use ECP_384 (charon-platform.log)" 100 pfs
esp_rekeyed=$(sas | grep 'ucp: .*INSTALLED' | grep -o 'ESP:[^ ,]*' | tail -n 1)

# --- fail closed -------------------------------------------------------------
connect() { ip netns exec "$ns_p" timeout 5 bash -c 'exec 3<>/dev/tcp/198.19.2.1/5000' 2>&1; }
connect >/dev/null || fail "the SMSC's inner address is unreachable with the tunnel up"
routes_to_smsc() { ip -n "$ns_p" route show table all | grep -E '(^| )198\.19\.2\.1( |$)' | sed 's/ proto [a-z]*//; s/ *$//' | paste -sd ';'; }
route_up=$(routes_to_smsc)
t_down=$(date +%s%N)
swan_p --terminate --ike smsc >/dev/null
child_gone() { ! sas | grep -q INSTALLED; }
wait_for "the CHILD_SA is still there after terminate" 100 child_gone
if out=$(connect); then
	fail "with the tunnel down, 198.19.2.1:5000 is still reachable: it fails OPEN"
fi
# EHOSTUNREACH: the unreachable route of ipsec-sidecar.sh answered, not
# a timeout (a packet sent somewhere) nor the default route.
grep -q 'No route to host' <<<"$out" || fail "with the tunnel down, connect failed, but not with EHOSTUNREACH: $out"
route_down=$(routes_to_smsc)
[ "$route_down" = "unreachable 198.19.2.1" ] || fail "with the tunnel down, the routes to 198.19.2.1 are: $route_down"
log "tunnel down: connect to 198.19.2.1:5000: No route to host (route: $route_down)"
down_ms=$(elapsed_ms "$t_down")

# --- the captures --------------------------------------------------------------
# Stop both tcpdumps (SIGINT flushes) before reading the files.
for pid in "${captures[@]}"; do
	kill -INT "$pid"
	wait "$pid" 2>/dev/null || true
done
count() { tcpdump -r "$1" -nn "${@:2}" 2>/dev/null | wc -l; }
outer=$tmp/outer.pcap
total=$(count "$outer")
ike500=$(count "$outer" 'udp port 500')
ike4500=$(count "$outer" 'udp port 4500 and udp[4:2] > 12 and udp[8:4] = 0')
esp=$(count "$outer" 'udp port 4500 and udp[4:2] > 12 and udp[8:4] != 0')
keepalive=$(count "$outer" 'udp port 4500 and udp[4:2] = 9')
other=$(count "$outer" 'not (udp port 500 or udp port 4500)')
tcp=$(count "$outer" 'tcp')
# UCP frames are ASCII: "/O/60/" is a login, "/R/51/A/" a submit's ACK.
ucp_outer=$(grep -a -c -E '/(O|R)/(60|51|53)/' "$outer" || true)
inner=$tmp/inner.pcap
inner_tcp=$(count "$inner" 'tcp port 5000')
ot() { grep -a -o -E "$1" "$inner" | wc -l; }
o60=$(ot '/O/60/') a60=$(ot '/R/60/A/') o51=$(ot '/O/51/') a51=$(ot '/R/51/A/') o53=$(ot '/O/53/') a53=$(ot '/R/53/A/')

[ "$total" -gt 0 ] || fail "the outer capture is empty"
[ "$esp" -gt 0 ] || fail "no ESP on the link"
[ "$other" -eq 0 ] || fail "$other packets on the link are neither IKE nor ESP-in-UDP: $(tcpdump -r "$outer" -nn 'not (udp port 500 or udp port 4500)' 2>/dev/null | head -n 3)"
[ "$tcp" -eq 0 ] || fail "$tcp TCP packets on the link"
[ "$ucp_outer" -eq 0 ] || fail "UCP in clear on the link"
[ $((ike500 + ike4500 + esp + keepalive)) -eq "$total" ] || fail "outer: $total packets, $ike500 + $ike4500 IKE, $esp ESP, $keepalive keep-alives"
for n in "60 $o60 $a60" "51 $o51 $a51" "53 $o53 $a53"; do
	read -r op ops acks <<<"$n"
	[ "$ops" -ge 1 ] || fail "no OT $op inside the tunnel"
	[ "$acks" -ge 1 ] || fail "no ACK of an OT $op inside the tunnel"
done

cat <<EOF

test-ipsec: PASS   ($(elapsed_ms "$t0") ms in all, builds included)
  tunnel          IKEv2, certificates (ECDSA P-384), IKE ${ike_alg:-?}, ${esp_alg:-?} in UDP/4500 (kernel-libipsec)
  bring-up        ${bringup_ms} ms  (namespaces + link + 2 charons + IKE_SA + CHILD_SA)
  smsc-link       login $(field login_ms "$result") ms; submit ACKed $(field submitted_ms "$result") ms, DR $(field delivered_ms "$result") ms after publish
  rekey           CHILD_SA rekeyed with PFS: ${esp_rekeyed}
  rotation        new certificate in use ${rotation_ms} ms after the Secret changed (IKE_SA ${ike_old#smsc: } -> ${ike_new#smsc: }); then submit ACKed $(field submitted_ms "$result2") ms, DR $(field delivered_ms "$result2") ms, same UCP session
  smsc-sim        logins $(stat logins), submits accepted $(stat accepted), DRs ACKed $(stat drs_acked)
  in the tunnel   ${inner_tcp} TCP packets to/from :5000; UCP OT 60 $o60/ACK $a60, OT 51 $o51/ACK $a51, OT 53 $o53/ACK $a53
  on the link     ${total} packets: IKE ${ike500} on udp/500 + ${ike4500} on udp/4500, ESP-in-UDP ${esp}, NAT keep-alives ${keepalive}, other ${other} (TCP ${tcp}, UCP in clear ${ucp_outer})
  routes          tunnel up: ${route_up}
  fail closed     terminated in ${down_ms} ms; then connect 198.19.2.1:5000: No route to host (route: ${route_down})
EOF
