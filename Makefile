# nerve: build, run, test and regenerate. `make help` lists the targets.
#
# Most targets need root (eBPF, loop devices, mounts); run them with sudo.
# sudo resets PATH, so Go is looked up on PATH first and then in /usr/local/go.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# go generate runs `go tool bpf2go`, which needs the same go on PATH.
export PATH := $(patsubst %/,%,$(dir $(GO))):$(PATH)

# bpf2go reads these when gen.go does not pass -cc / -strip itself.
export BPF2GO_CC ?= clang-14
export BPF2GO_STRIP ?= llvm-strip-14

ARGS ?=
TEST_TIMEOUT ?= 40m
FUZZTIME ?= 20s
BENCH_DURATION ?= 20s
BENCH_ARGS ?=

# make vagrant-test: the VMs of the Vagrantfile, the command run in /vagrant
# as root in each (e.g. VAGRANT_TEST='make test' for every test), and where
# the logs and the summary go.
VAGRANT_NODES ?= nerve1 nerve2 nerve3
VAGRANT_TEST ?= go test -count=1 -timeout 30m -v ./test/vm/...
VAGRANT_TEST_OUT ?= .vagrant/test-results

# cmd/nerve declares `var version, revision string` for `nerve version`.
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
# The binary make build writes, and make install and make deb take.
BIN ?= bin/nerve

# make install: under DESTDIR, the binary in PREFIX/bin, the units in UNITDIR
# and the configuration in SYSCONFDIR/nerve (the units' paths follow). make
# deb: dist/nerve_<version>_<arch>.deb, laid out as make install does with
# PREFIX=/usr.
PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system
DIST ?= dist

# Debian package, then the command or file that shows it is present (so a tool
# installed some other way also counts).
DEPS := \
	clang-14:clang-14 \
	llvm-14:llvm-strip-14 \
	libbpf-dev:/usr/include/bpf/bpf_helpers.h \
	bpftool:bpftool \
	libbpf-tools:/usr/sbin/biolatency \
	fio:fio \
	stress-ng:stress-ng \
	fuse3:fusermount3 \
	prometheus:promtool \
	util-linux:losetup \
	kmod:modprobe \
	openjdk-17-jdk-headless:javac \
	e2fsprogs:mkfs.ext4

.PHONY: help deps mounts build run test vet generate vmlinux check-generated docs check-docs bench-blockio bench-sched bench-jvm bench-manager bench-detect test-manager test-manager-long fuzz vagrant-test clean

help:
	@echo 'sudo make run         build and start the agent on the embedded default config (ARGS="..." adds flags)'
	@echo 'sudo make test        install deps, mount tracefs/bpffs, go vet, go test (privileged tests run as root)'
	@echo '     make build       bin/nerve'
	@echo 'sudo make install     install the binary, units, configuration and dashboards (DESTDIR, PREFIX=$(PREFIX))'
	@echo '     make deb         $(DIST)/nerve_<version>_<arch>.deb (the same files, PREFIX=/usr)'
	@echo 'sudo make deps        install the Debian packages tests and generation need; load loop and fuse'
	@echo 'sudo make mounts      mount tracefs and bpffs if they are not'
	@echo '     make generate    regenerate the bpf2go objects (needs clang-14)'
	@echo '     make vmlinux     regenerate bpf/include/vmlinux.h from this kernel'"'"'s BTF'
	@echo '     make check-generated  regenerate and fail if the committed objects differ'
	@echo 'sudo make docs        regenerate the reference in docs/ (CLI, configuration, goals, metrics, decision report)'
	@echo 'sudo make check-docs  regenerate docs/ into a temporary directory and fail if the committed files differ'
	@echo 'sudo make bench-blockio    fio on a loop device: no tracer vs nerve vs biolatency'
	@echo 'sudo make bench-sched      stress-ng --switch, perf bench sched pipe: no tracer vs nerve vs runqlat'
	@echo 'sudo make bench-jvm        a safepoint-heavy JVM: no tracer vs nerve (jvm probe), safepoints/s and BPF ns'
	@echo 'sudo make test-manager     the manager under a nemesis (kills, pauses, partitions): $$NERVE_MANAGER_TEST_DURATION, default 60s'
	@echo 'sudo make test-manager-long  the same for 10 minutes'
	@echo 'sudo make bench-detect     every nerve drill, control and mixed case (real faults, probes and rules): time to detect'
	@echo '     make bench-manager    acquire/release latency and leader failover of a 3-replica manager on 127.0.0.1'
	@echo '     make fuzz        every Fuzz target for $$FUZZTIME ($(FUZZTIME)) each'
	@echo '     make vagrant-test     vagrant up, then the test/vm scenarios as root in every VM; summary in $(VAGRANT_TEST_OUT)'
	@echo '     make clean'

deps:
	@command -v "$(GO)" >/dev/null || { echo "deps: Go not found; install Go >= 1.26 into /usr/local/go" >&2; exit 1; }
	@missing=(); \
	for d in $(DEPS); do \
		pkg=$${d%%:*}; probe=$${d#*:}; \
		if [[ "$$(dpkg-query -W -f='$${db:Status-Status}' "$$pkg" 2>/dev/null)" == installed ]]; then continue; fi; \
		if [[ $$probe == /* ]]; then [[ -e $$probe ]] && continue; else command -v "$$probe" >/dev/null && continue; fi; \
		missing+=("$$pkg"); \
	done; \
	if (( $${#missing[@]} )); then \
		if (( EUID != 0 )); then echo "deps: missing $${missing[*]}; not root, so not installing (sudo make deps)" >&2; exit 0; fi; \
		echo "deps: installing $${missing[*]}"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq; \
		apt-get install -y -qq --no-install-recommends "$${missing[@]}" >/dev/null; \
	fi
	@# Built-in modules show up in /sys/module without modprobe (which fails without /proc/modules).
	@for m in loop fuse; do \
		[[ -d /sys/module/$$m ]] || modprobe -q "$$m" 2>/dev/null || echo "deps: module $$m not available" >&2; \
	done

# Not root: nothing can be mounted, and the privileged tests skip anyway.
mounts:
	@if (( EUID != 0 )); then echo "mounts: not root, skipping" >&2; exit 0; fi; \
	mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing; \
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# CGO_ENABLED=0 also lets the agent change the capabilities of all its
# threads (internal/agent/caps.go).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nerve

.PHONY: install uninstall deb

# The files of packaging.Files, the list the .deb is built from
# (packaging/packaging_test.go checks that the two install the same). An
# existing configuration file is left as it is.
install: build
	install -D -m 0755 '$(BIN)' '$(DESTDIR)$(PREFIX)/bin/nerve'
	install -d '$(DESTDIR)$(UNITDIR)' '$(DESTDIR)$(SYSCONFDIR)/nerve' '$(DESTDIR)$(PREFIX)/share/nerve/dashboards/rules'
	for u in packaging/systemd/*.service; do \
		sed -e 's|/usr/bin/nerve|$(PREFIX)/bin/nerve|g' -e 's|/etc/nerve/|$(SYSCONFDIR)/nerve/|g' "$$u" >'$(DESTDIR)$(UNITDIR)'/"$${u##*/}"; \
		chmod 0644 '$(DESTDIR)$(UNITDIR)'/"$${u##*/}"; \
	done
	for f in nerve.yml manager.flags; do \
		dst='$(DESTDIR)$(SYSCONFDIR)/nerve'/"$$f"; \
		if [[ -e $$dst ]]; then echo "install: keeping $$dst"; else install -m 0644 "packaging/$$f" "$$dst"; fi; \
	done
	for f in dashboards/*.json dashboards/rules/*.yml; do \
		[[ -e $$f && $$f != *_test.yml ]] || continue; \
		install -m 0644 "$$f" '$(DESTDIR)$(PREFIX)/share/nerve/'"$${f%/*}/"; \
	done
	@if [[ -z '$(DESTDIR)' && -d /run/systemd/system ]]; then systemctl daemon-reload; fi

# Leaves SYSCONFDIR/nerve and the state in /var/lib alone.
uninstall:
	rm -f '$(DESTDIR)$(PREFIX)/bin/nerve' '$(DESTDIR)$(UNITDIR)/nerve-agent.service' '$(DESTDIR)$(UNITDIR)/nerve-manager.service'
	rm -rf '$(DESTDIR)$(PREFIX)/share/nerve'

# nfpm as a library (packaging/deb.go): its command line pulls packagers
# (rpm, msix) that are not needed here.
deb: build
	$(GO) run ./packaging/mkdeb -bin '$(BIN)' -version '$(VERSION)' -arch "$$($(GO) env GOARCH)" -out '$(DIST)'

run: build mounts
	bin/nerve agent $(ARGS)

vet:
	$(GO) vet ./...

# NERVE_REQUIRE_PRIVILEGED is left to the caller: .ci/run sets it, so a
# privileged test that cannot run fails there and skips on a laptop.
# The end-to-end packages make real faults and judge the whole machine (a
# control scenario must see no diagnosis at all), so they run one package at
# a time, after the others: a slow disk of one must not be the noise of
# another.
E2E_PKGS := ./internal/drill/... ./test/... ./dashboards/... ./packaging/...

test: deps mounts vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v -e '/internal/drill' -e '/test/' -e '/dashboards' -e '/packaging')
	$(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) $(E2E_PKGS)

generate:
	@command -v "$(BPF2GO_CC)" >/dev/null || { echo "generate: $(BPF2GO_CC) not found; run 'sudo make deps'" >&2; exit 1; }
	$(GO) generate ./...

vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/include/vmlinux.h.tmp
	mv bpf/include/vmlinux.h.tmp bpf/include/vmlinux.h

check-generated: generate
	@if ! git diff --quiet -- '*_bpfel.go' '*_bpfel.o' || [[ -n "$$(git ls-files --others --exclude-standard -- '*_bpfel.go' '*_bpfel.o')" ]]; then \
		git status --short -- '*_bpfel.go' '*_bpfel.o' >&2; \
		echo "check-generated: the committed bpf2go output differs from what 'make generate' produces;" >&2; \
		echo "check-generated: run 'make generate' with clang-14 and commit the *_bpfel.go and *_bpfel.o files" >&2; \
		exit 1; \
	fi
	@echo "check-generated: bpf2go output is up to date"

# `nerve docs` (internal/docgen) writes the reference from the binary itself:
# the CLI model, the config and goals types with their comments and default
# files, the agent's and the manager's registries, a real decision report.
# Root: the metrics are listed with every probe attached. docs/*.md files it
# does not write (operator-guide.md) are written by hand.
docs: build mounts
	mkdir -p docs
	'$(BIN)' docs --out=docs --source=.

check-docs: build mounts
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	'$(BIN)' docs --out="$$tmp" --source=.; \
	stale=0; \
	for f in "$$tmp"/*; do \
		diff -u "docs/$${f##*/}" "$$f" >&2 || stale=1; \
	done; \
	if (( stale )); then \
		echo "check-docs: docs/ differs from what 'make docs' writes; run 'sudo make docs' and commit docs/" >&2; \
		exit 1; \
	fi; \
	echo "check-docs: docs/ is up to date"

bench-blockio: build mounts
	$(GO) run ./test/bench/blockio -duration $(BENCH_DURATION) -nerve bin/nerve $(BENCH_ARGS)

# perf bench sched pipe is skipped, and the report says why, when perf cannot run it.
bench-sched: build mounts
	$(GO) run ./test/bench/sched -duration $(BENCH_DURATION) -nerve bin/nerve $(BENCH_ARGS)

bench-jvm: build mounts
	$(GO) run ./test/bench/jvm -duration $(BENCH_DURATION) -nerve bin/nerve $(BENCH_ARGS)

# Network namespaces and signals to the replicas: root. The default run is
# also part of `make test`.
test-manager:
	$(GO) test -count=1 -timeout 10m -run '^TestManagerJepsen$$' -v ./test/manager/

test-manager-long:
	NERVE_MANAGER_TEST_DURATION=10m $(GO) test -count=1 -timeout 30m -run '^TestManagerJepsen$$' -v ./test/manager/

bench-manager: build
	$(GO) run ./test/bench/manager -nerve bin/nerve $(BENCH_ARGS)

# `nerve drill all --json` (internal/drill), then one table of its times to
# detect, from each result's top-level fields; the status is the drill's.
bench-detect: build mounts
	@rc=0; bin/nerve drill scenarios --json $(BENCH_ARGS) > bin/drill.json || rc=$$?; \
	awk -F': ' '/^      "drill"/ {gsub(/[",]/, "", $$2); d = $$2; t[d] = "-"; r[d] = "FAIL"; n[++c] = d} \
		/^      "time_to_detect_seconds"/ {gsub(/,/, "", $$2); t[d] = sprintf("%.1fs", $$2)} \
		/^      "passed": true/ {r[d] = "ok"} \
		END {printf "%-24s %-16s %s\n", "SCENARIO", "TIME TO DETECT", "RESULT"; for (i = 1; i <= c; i++) printf "%-24s %-16s %s\n", n[i], t[n[i]], r[n[i]]}' bin/drill.json; \
	exit $$rc

# `go test -list` prints a package's matching names, then its "ok <pkg>" line.
fuzz:
	@targets=$$($(GO) test -list '^Fuzz' ./... | awk '/^Fuzz/ {n[++c] = $$1; next} /^ok/ {for (i = 1; i <= c; i++) print $$2, n[i]; c = 0}'); \
	if [[ -z $$targets ]]; then echo "fuzz: no Fuzz targets"; exit 0; fi; \
	while read -r pkg name; do \
		echo "fuzz: $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
	done <<< "$$targets"

# Not in CI (no virtualisation there). `vagrant up` leaves running VMs alone
# and provisions only new ones. The VMs run the command at the same time, each
# with NERVE_REQUIRE_PRIVILEGED=1 so that a scenario that cannot run fails;
# one log per VM, and summary.txt with each VM's verdict and test lines.
vagrant-test:
	@command -v vagrant >/dev/null || { echo "vagrant-test: vagrant not found" >&2; exit 1; }
	vagrant up
	@out='$(VAGRANT_TEST_OUT)'; rm -rf "$$out"; mkdir -p "$$out"; \
	declare -A pid; \
	for n in $(VAGRANT_NODES); do \
		echo "vagrant-test: $$n: $(VAGRANT_TEST)"; \
		vagrant ssh "$$n" -c 'cd /vagrant && sudo NERVE_REQUIRE_PRIVILEGED=1 $(VAGRANT_TEST)' </dev/null >"$$out/$$n.log" 2>&1 & \
		pid[$$n]=$$!; \
	done; \
	failed=0; \
	{ \
		echo "make vagrant-test, $$(date -u +%FT%TZ), revision $(REVISION)"; \
		echo "command: $(VAGRANT_TEST)"; \
		for n in $(VAGRANT_NODES); do \
			rc=0; wait "$${pid[$$n]}" || rc=$$?; \
			if (( rc == 0 )); then echo "$$n: PASS"; else echo "$$n: FAIL (exit $$rc), log $$out/$$n.log"; failed=1; fi; \
			grep -E '^ *--- (PASS|FAIL|SKIP)|^(ok|FAIL|panic:)([[:space:]]|$$)' "$$out/$$n.log" | sed 's/^/    /' || true; \
		done; \
	} >"$$out/summary.txt"; \
	cat "$$out/summary.txt"; \
	exit "$$failed"

clean:
	rm -rf bin dist
