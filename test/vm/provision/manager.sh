#!/usr/bin/env bash
# One replica of the rack-lock manager, nerve-manager.service. All replicas
# bootstrap with the same peers; raft elects a leader once two of three run.
# Env: NODE_ID (m1...), NODE_ADDR, PEERS (space-separated ID=RAFT,HTTP, this one included).
# The bearer token comes from the Vagrantfile's file provisioner at
# /tmp/nerve-manager-token; it is the same on every VM.
set -euo pipefail
: "${NODE_ID:?}" "${NODE_ADDR:?}" "${PEERS:?}"

# The packaged nerve-manager.service reads its tokens from
# /etc/nerve/manager-tokens and its flags from /etc/nerve/manager.flags.
token=/etc/nerve/manager-tokens
install -d -m 0755 /etc/nerve
if [[ -s /tmp/nerve-manager-token ]]; then
	install -m 0600 -o root -g root /tmp/nerve-manager-token "$token"
	rm -f /tmp/nerve-manager-token
fi
[[ -s $token ]] || { echo "manager.sh: no token in $token" >&2; exit 1; }

{
	echo "# Written by test/vm/provision/manager.sh."
	echo "--id=$NODE_ID"
	echo "--bind=$NODE_ADDR:19650"
	echo "--http=$NODE_ADDR:19649"
	echo "--bootstrap"
	for p in $PEERS; do
		echo "--peer=$p"
	done
} >/etc/nerve/manager.flags
systemctl daemon-reload
systemctl enable nerve-manager.service
# A rebuilt binary or changed peers take effect now; the raft state survives.
systemctl restart nerve-manager.service
