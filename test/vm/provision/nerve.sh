#!/usr/bin/env bash
# Go, nerve's build dependencies (`make deps`, the same Debian packages as CI),
# and nerve built from /vagrant as the .deb operators install (`make deb`):
# /usr/bin/nerve, nerve-agent.service, nerve-manager.service, /etc/nerve.
# Env: GO_VERSION (the Vagrantfile keeps it in step with go.mod).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
: "${GO_VERSION:?}"

apt-get update -qq
apt-get install -y -qq --no-install-recommends ca-certificates curl git make >/dev/null

# The Go release from go.dev: Debian 12's golang is far older than go.mod needs.
if ! /usr/local/go/bin/go version 2>/dev/null | grep -q "go${GO_VERSION} "; then
	arch=$(dpkg --print-architecture) # amd64 or arm64, the same names as Go's
	curl -fsSL "https://go.dev/dl/go${GO_VERSION}.linux-${arch}.tar.gz" -o /tmp/go.tgz
	rm -rf /usr/local/go
	tar -C /usr/local -xzf /tmp/go.tgz
	rm /tmp/go.tgz
fi
# On everyone's PATH, and on sudo's secure_path too (the test/vm scenarios run
# `go build` as root).
# shellcheck disable=SC2016 # $PATH is for the login shell to expand
echo 'export PATH=/usr/local/go/bin:$PATH' >/etc/profile.d/go.sh
ln -sf /usr/local/go/bin/go /usr/local/go/bin/gofmt /usr/local/bin/

cd /vagrant
# /vagrant belongs to the vagrant user; without this git refuses root and the
# version stamped into the binary is "dev".
git config --global --get-all safe.directory | grep -qx /vagrant ||
	git config --global --add safe.directory /vagrant
make deps mounts
make deb
# The provisioning scripts write /etc/nerve's files after this: keep them on
# a reinstall.
dpkg -i --force-confold dist/nerve_*_"$(dpkg --print-architecture)".deb
nerve version
