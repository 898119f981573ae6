package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// network is a bridge in the test's namespace and one namespace per
// replica, each joined to the bridge by a veth pair. Addresses come from
// 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks, with the
// third octet taken from the pid so that runs side by side do not collide.
type network struct {
	tag    string // unique per run: names the bridge, namespaces and veths
	subnet string // "198.18.N"
	n      int

	mu       sync.Mutex
	isolated map[int]bool // guarded by mu
	cutOff   map[int]bool // guarded by mu
}

func newNetwork(n int) (nw *network, err error) {
	pid := os.Getpid()
	nw = &network{
		tag:      fmt.Sprintf("nvm%d", pid%100000),
		subnet:   fmt.Sprintf("198.18.%d", pid%250+1),
		n:        n,
		isolated: map[int]bool{},
		cutOff:   map[int]bool{},
	}
	defer func() {
		if err != nil {
			nw.close()
		}
	}()
	br := nw.bridge()
	steps := [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", nw.subnet + ".1/24", "dev", br},
		{"link", "set", br, "up"},
	}
	for i := range n {
		h, p := nw.veth(i)
		steps = append(steps,
			[]string{"netns", "add", nw.ns(i)},
			[]string{"link", "add", h, "type", "veth", "peer", "name", p},
			[]string{"link", "set", p, "netns", nw.ns(i)},
			[]string{"link", "set", h, "master", br},
			[]string{"link", "set", h, "up"},
			[]string{"-n", nw.ns(i), "link", "set", "lo", "up"},
			[]string{"-n", nw.ns(i), "addr", "add", nw.addr(i) + "/24", "dev", p},
			[]string{"-n", nw.ns(i), "link", "set", p, "up"},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return nil, err
		}
	}
	// Bridged frames must not meet the host's iptables (a FORWARD policy
	// of DROP, as Docker sets, would cut the cluster): off for this bridge
	// only, and a kernel without the option has no br_netfilter either.
	ip("link", "set", br, "type", "bridge", "nf_call_iptables", "0")
	return nw, nil
}

func (nw *network) bridge() string { return nw.tag + "br" }
func (nw *network) ns(i int) string {
	return fmt.Sprintf("%s-r%d", nw.tag, i+1)
}
func (nw *network) veth(i int) (host, peer string) {
	return fmt.Sprintf("%sh%d", nw.tag, i+1), fmt.Sprintf("%sp%d", nw.tag, i+1)
}
func (nw *network) addr(i int) string { return fmt.Sprintf("%s.%d", nw.subnet, 11+i) }

// isolate takes the host end of replica i's veth down, or up again.
func (nw *network) isolate(i int, on bool) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.isolated[i] == on {
		return nil
	}
	h, _ := nw.veth(i)
	state := "up"
	if on {
		state = "down"
	}
	if err := ip("link", "set", h, state); err != nil {
		return err
	}
	nw.isolated[i] = on
	return nil
}

// cut adds (or removes) blackhole routes between replica i and every other
// replica, in both namespaces, so packets between them are dropped while
// the test's namespace still reaches every replica.
func (nw *network) cut(i int, on bool) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.cutOff[i] == on {
		return nil
	}
	verb := "del"
	if on {
		verb = "add"
	}
	var errs []error
	for j := range nw.n {
		if j == i {
			continue
		}
		errs = append(errs,
			ip("-n", nw.ns(i), "route", verb, "blackhole", nw.addr(j)+"/32"),
			ip("-n", nw.ns(j), "route", verb, "blackhole", nw.addr(i)+"/32"))
	}
	if err := errors.Join(errs...); err != nil && on {
		return err
	}
	nw.cutOff[i] = on
	return nil
}

// close deletes the namespaces (and with them the veths) and the bridge.
// The replicas must be dead first. Errors of things already gone are
// ignored, so a half-built network is removed too.
func (nw *network) close() error {
	var errs []error
	for i := range nw.n {
		if err := ip("netns", "del", nw.ns(i)); err != nil && !gone(err) {
			errs = append(errs, err)
		}
		h, _ := nw.veth(i)
		ip("link", "del", h)
	}
	if err := ip("link", "del", nw.bridge()); err != nil && !gone(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func gone(err error) bool {
	s := err.Error()
	return strings.Contains(s, "No such file") || strings.Contains(s, "Cannot find device") || strings.Contains(s, "does not exist")
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
