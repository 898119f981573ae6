#!/usr/bin/env bash
# Prometheus (Debian's package, which `make deps` installs) scraping the agent
# and the manager replica of every VM, labelled with each one's rack. Every VM
# gets the same configuration, so http://ADDR:9090 of any of them shows the
# whole cluster.
# Env: CLUSTER, NODES (space-separated ADDR=RACK).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
: "${CLUSTER:?}" "${NODES:?}"

command -v prometheus >/dev/null ||
	apt-get install -y -qq --no-install-recommends prometheus >/dev/null

{
	cat <<YAML
# Written by test/vm/provision/prometheus.sh.
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['localhost:9090']
YAML
	for job in nerve-agent:19648 nerve-manager:19649; do
		echo "  - job_name: ${job%:*}"
		echo "    static_configs:"
		for n in $NODES; do
			echo "      - targets: ['${n%=*}:${job#*:}']"
			echo "        labels: {cluster: $CLUSTER, rack: ${n#*=}}"
		done
	done
} >/etc/prometheus/prometheus.yml.new
promtool check config /etc/prometheus/prometheus.yml.new
mv /etc/prometheus/prometheus.yml.new /etc/prometheus/prometheus.yml
systemctl enable prometheus.service
systemctl restart prometheus.service
