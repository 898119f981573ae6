#!/usr/bin/env bash
# Prometheus (Debian's package, which `make deps` installs) scraping the agent
# and the manager replica of every VM, labelled with each one's rack. Every VM
# gets the same configuration, so http://ADDR:9090 of any of them shows the
# whole cluster. nerve's recording and alerting rules (dashboards/rules) are
# loaded; the Grafana dashboards (dashboards/*.json) import into any Grafana
# pointed at it.
# Env: CLUSTER, NODES (space-separated ADDR=RACK).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
: "${CLUSTER:?}" "${NODES:?}"

command -v prometheus >/dev/null ||
	apt-get install -y -qq --no-install-recommends prometheus >/dev/null

install -d /etc/prometheus/rules
for f in /vagrant/dashboards/rules/nerve-*.yml; do
	[[ $f == *_test.yml ]] || install -m 0644 "$f" /etc/prometheus/rules/
done

{
	cat <<YAML
# Written by test/vm/provision/prometheus.sh.
global:
  scrape_interval: 15s
rule_files:
  - /etc/prometheus/rules/nerve-*.yml
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['localhost:9090']
YAML
	# Agents are labelled with their node's cluster and rack; replicas are
	# not: their nerve_manager_rack_grants carry the cluster and rack of each
	# lock, which target labels of the same names would shadow.
	echo "  - job_name: nerve-agent"
	echo "    static_configs:"
	for n in $NODES; do
		echo "      - targets: ['${n%=*}:19648']"
		echo "        labels: {cluster: $CLUSTER, rack: ${n#*=}}"
	done
	echo "  - job_name: nerve-manager"
	echo "    static_configs:"
	echo "      - targets: [$(for n in $NODES; do printf "'%s:19649'," "${n%=*}"; done | sed 's/,$//')]"
} >/etc/prometheus/prometheus.yml.new
promtool check config /etc/prometheus/prometheus.yml.new
mv /etc/prometheus/prometheus.yml.new /etc/prometheus/prometheus.yml
systemctl enable prometheus.service
systemctl restart prometheus.service
