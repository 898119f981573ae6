#!/usr/bin/env bash
# Apache Cassandra from the project's Debian repository, one node of a
# multi-node cluster: GossipingPropertyFileSnitch, data centre dc1, this VM's
# rack. It runs as a native systemd unit, cassandra.service, that systemd
# restarts when the JVM dies (nerve's rung 3 relies on that).
# Env: CASSANDRA_SERIES (e.g. 50x), CLUSTER, NODE_ADDR, RACK, SEEDS (comma-separated addresses).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
: "${CASSANDRA_SERIES:?}" "${CLUSTER:?}" "${NODE_ADDR:?}" "${RACK:?}" "${SEEDS:?}"

keyring=/etc/apt/keyrings/apache-cassandra.asc
if [[ ! -s $keyring ]]; then
	install -d -m 0755 /etc/apt/keyrings
	curl -fsSL https://downloads.apache.org/cassandra/KEYS -o "$keyring"
fi
echo "deb [signed-by=$keyring] https://debian.cassandra.apache.org $CASSANDRA_SERIES main" \
	>/etc/apt/sources.list.d/cassandra.list

if ! dpkg-query -W -f='${db:Status-Status}' cassandra 2>/dev/null | grep -qx installed; then
	# The package starts Cassandra as "Test Cluster" on localhost; a node that
	# has run under another cluster name refuses the new one. Keep it stopped
	# until it is configured.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	apt-get update -qq
	# Cassandra 5.0 runs on Java 17, Debian 12's only JDK (make deps installs it).
	apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless cassandra >/dev/null
	rm -f /usr/sbin/policy-rc.d
	trap - EXIT
fi

yaml=/etc/cassandra/cassandra.yaml
sed -i -E \
	-e "s/^cluster_name:.*/cluster_name: '$CLUSTER'/" \
	-e "s/^(\s*)- seeds:.*/\1- seeds: \"$SEEDS\"/" \
	-e "s/^listen_address:.*/listen_address: $NODE_ADDR/" \
	-e "s/^rpc_address:.*/rpc_address: $NODE_ADDR/" \
	-e "s/^endpoint_snitch:.*/endpoint_snitch: GossipingPropertyFileSnitch/" \
	"$yaml"
for key in cluster_name listen_address rpc_address endpoint_snitch; do
	grep -q "^$key: " "$yaml" || { echo "cassandra.sh: $key not set in $yaml" >&2; exit 1; }
done
grep -q -- "- seeds: \"$SEEDS\"" "$yaml" || { echo "cassandra.sh: seeds not set in $yaml" >&2; exit 1; }
printf 'dc=dc1\nrack=%s\n' "$RACK" >/etc/cassandra/cassandra-rackdc.properties

# Takes precedence over the unit systemd generates from /etc/init.d/cassandra.
cat >/etc/systemd/system/cassandra.service <<UNIT
[Unit]
Description=Apache Cassandra
After=network-online.target
Wants=network-online.target

[Service]
User=cassandra
Group=cassandra
ExecStart=/usr/sbin/cassandra -f -H /var/lib/cassandra/java_heapdump.hprof -E /var/log/cassandra/hs_err.log
Restart=on-failure
RestartSec=10
LimitNOFILE=1048576
LimitNPROC=32768
LimitMEMLOCK=infinity
LimitAS=infinity
TimeoutStopSec=120

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now cassandra.service

# Wait for this node to be Up/Normal, so that the next VM bootstraps only
# after this one has joined (the Vagrantfile brings the VMs up one by one).
echo "cassandra.sh: waiting for $NODE_ADDR to be UN"
for _ in $(seq 120); do
	if nodetool status 2>/dev/null | grep -Eq "^UN +$NODE_ADDR "; then
		nodetool status
		exit 0
	fi
	sleep 5
done
echo "cassandra.sh: $NODE_ADDR is not UN after 10 minutes" >&2
nodetool status >&2 || true
journalctl -u cassandra.service -n 50 --no-pager >&2 || true
exit 1
