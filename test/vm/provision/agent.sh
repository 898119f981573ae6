#!/usr/bin/env bash
# `nerve agent` as nerve-agent.service, watching cassandra.service and taking
# rack locks from the managers on every VM.
# Env: CLUSTER, RACK, NODE, NODE_ADDR, MANAGER_ENDPOINTS (space-separated URLs).
set -euo pipefail
: "${CLUSTER:?}" "${RACK:?}" "${NODE:?}" "${NODE_ADDR:?}" "${MANAGER_ENDPOINTS:?}"

install -d -m 0755 /etc/nerve /var/lib/nerve
# A JVM being killed writes its dumps here first, as its own user.
install -d -o cassandra -g cassandra -m 0750 /var/lib/nerve/dumps

# Only what differs from the built-in defaults (internal/config/default.yaml).
cat >/etc/nerve/agent.yaml <<YAML
# Written by test/vm/provision/agent.sh.
actuator:
  target: cassandra
  data_mounts: [/var/lib/cassandra]
  nodetool: /usr/bin/nodetool
  dump_dir: /var/lib/nerve/dumps
  cql_hosts: [$NODE_ADDR:9042]
  lock: manager
manager:
  endpoints:
$(for e in $MANAGER_ENDPOINTS; do echo "    - $e"; done)
  token_file: /etc/nerve/manager-token
  cluster: $CLUSTER
  rack: $RACK
  node: $NODE
targets:
  - name: cassandra
    systemd_unit: cassandra.service
YAML

cat >/etc/systemd/system/nerve-agent.service <<'UNIT'
[Unit]
Description=nerve node-health agent
After=network-online.target nerve-manager.service
Wants=network-online.target

[Service]
ExecStart=/usr/local/bin/nerve agent --config.file=/etc/nerve/agent.yaml
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable nerve-agent.service
systemctl restart nerve-agent.service
