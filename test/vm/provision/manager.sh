#!/usr/bin/env bash
# One replica of the rack-lock manager, nerve-manager.service. All replicas
# bootstrap with the same peers; raft elects a leader once two of three run.
# Env: NODE_ID (m1...), NODE_ADDR, PEERS (space-separated ID=RAFT,HTTP, this one included).
# The bearer token comes from the Vagrantfile's file provisioner at
# /tmp/nerve-manager-token; it is the same on every VM.
set -euo pipefail
: "${NODE_ID:?}" "${NODE_ADDR:?}" "${PEERS:?}"

token=/etc/nerve/manager-token
install -d -m 0755 /etc/nerve
if [[ -s /tmp/nerve-manager-token ]]; then
	install -m 0600 -o root -g root /tmp/nerve-manager-token "$token"
	rm -f /tmp/nerve-manager-token
fi
[[ -s $token ]] || { echo "manager.sh: no token in $token" >&2; exit 1; }

peer_flags=()
for p in $PEERS; do
	peer_flags+=("--peer=$p")
done

cat >/etc/systemd/system/nerve-manager.service <<UNIT
[Unit]
Description=nerve rack-lock manager replica $NODE_ID
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/local/bin/nerve manager --id=$NODE_ID --dir=/var/lib/nerve-manager \\
  --bind=$NODE_ADDR:19650 --http=$NODE_ADDR:19649 --tokens-file=$token \\
  --bootstrap ${peer_flags[*]}
StateDirectory=nerve-manager
StateDirectoryMode=0700
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable nerve-manager.service
# A rebuilt binary or changed peers take effect now; the raft state survives.
systemctl restart nerve-manager.service
