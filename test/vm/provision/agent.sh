#!/usr/bin/env bash
# `nerve agent` as nerve-agent.service, watching cassandra.service and taking
# rack locks from the managers on every VM.
# Env: CLUSTER, RACK, NODE, NODE_ADDR, MANAGER_ENDPOINTS (space-separated URLs).
set -euo pipefail
: "${CLUSTER:?}" "${RACK:?}" "${NODE:?}" "${NODE_ADDR:?}" "${MANAGER_ENDPOINTS:?}"

# The packaged nerve-agent.service runs `nerve agent --config.file=/etc/nerve/nerve.yml`
# with its state in /var/lib/nerve; this writes that file and a drop-in.
install -d -m 0755 /etc/nerve /var/lib/nerve
# A JVM being killed writes its dumps here first, as its own user.
install -d -o cassandra -g cassandra -m 0750 /var/lib/nerve/dumps

# Only what differs from the built-in defaults (internal/config/default.yaml).
cat >/etc/nerve/nerve.yml <<YAML
# Written by test/vm/provision/agent.sh.
actuator:
  target: cassandra
  state_dir: /var/lib/nerve
  data_mounts: [/var/lib/cassandra]
  nodetool: /usr/bin/nodetool
  dump_dir: /var/lib/nerve/dumps
  cql_hosts: [$NODE_ADDR:9042]
  lock: manager
manager:
  endpoints:
$(for e in $MANAGER_ENDPOINTS; do echo "    - $e"; done)
  token_file: /etc/nerve/manager-tokens
  cluster: $CLUSTER
  rack: $RACK
  node: $NODE
targets:
  - name: cassandra
    systemd_unit: cassandra.service
YAML

# The replica on this VM is one of the agent's managers: start after it.
install -d /etc/systemd/system/nerve-agent.service.d
cat >/etc/systemd/system/nerve-agent.service.d/vagrant.conf <<'UNIT'
# Written by test/vm/provision/agent.sh.
[Unit]
After=nerve-manager.service
UNIT
systemctl daemon-reload
systemctl enable nerve-agent.service
systemctl restart nerve-agent.service
