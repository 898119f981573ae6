package dashboards

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nervehq/nerve/internal/nervetest"
	"github.com/nervehq/nerve/internal/privtest"
	"github.com/nervehq/nerve/jvm/javatest"
)

// The drills TestLive runs, and the diagnoses the agent must reach during
// them (the others are checked when the agent reached them: on a busy CI
// machine the node-wide page-fault p99 may stay under its goal).
var (
	liveDrills   = []string{"slow-disk", "disk-overload", "cpu-overload", "memory-stall"}
	requiredKind = []string{"slow_drive", "cpu_overload"}
)

// diagnosisAlerts maps each diagnosis to its alert in rules/nerve-alerts.yml.
var diagnosisAlerts = map[string]string{
	"slow_drive": "NerveSlowDrive", "disk_overload": "NerveDiskOverload", "cpu_overload": "NerveCPUOverload",
	"memory_stall": "NerveMemoryStall", "query_of_death": "NerveQueryOfDeath", "failed_drive": "NerveFailedDrive",
}

// firedAlerts must go pending or firing during the run: the faults of the
// run cause them (nodetool is /bin/false, slow_drive has no action
// configured, a lease lapses).
var firedAlerts = []string{"NerveActionFailed", "NerveNoActionLeft", "NerveRackLockSuspect"}

// mayBeEmpty are dashboard queries that are empty over a run where nothing
// of the kind happened, each with why. Like an alert's condition, each must
// still run, and every selector in it must return data.
var mayBeEmpty = map[string]string{
	`nerve-self.json: annotation "Agent restarts"`: "the agent does not restart during the run (process_start_time_seconds must exist)",
}

// synthetic are series Prometheus makes itself.
var synthetic = map[string]bool{"up": true, "ALERTS": true, "ALERTS_FOR_STATE": true}

// TestLive is the proof that the dashboards and rules show real data. It
// runs the real nerve binary as an agent (every probe, --bpf-stats, a target
// for a JVM) and as a manager replica, a JVM forcing safepoints, and a real
// Prometheus scraping both every second with the rules loaded. It takes and
// lets lapse rack locks at the manager, and runs `nerve drill` (a slow disk,
// an overloaded disk, CPU hogs, page-fault stalls) as a separate process,
// which the agent watches like any other load. Then, for every panel query,
// annotation and variable of every dashboard, and every rule:
//
//   - Prometheus runs it (with Grafana's variables substituted as Grafana
//     would: label_values of the variable's own query), so it parses and
//     evaluates;
//   - it returns at least one finite sample over the run; an alert's
//     condition is empty on a healthy node, so for alerts (and the few
//     queries of mayBeEmpty, each with its reason) every selector in it must
//     return data instead, and the alerts the run causes must have gone
//     pending or firing (ALERTS);
//   - every metric name in it is on the agent's or the manager's /metrics
//     (or recorded by the rules, or made by Prometheus: up, ALERTS);
//   - every selector in it returns data by itself.
func TestLive(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "go", "prometheus", "promtool", "java", "javac")
	began := time.Now()
	dir := t.TempDir()
	bin := nervetest.Binary(t)

	classes := t.TempDir()
	javatest.Compile(t, classes, "SafepointLoop.java")
	javatest.Start(t, classes, "SafepointLoop", nil, "600")

	mgr := startManager(t, bin, dir)
	agentAddr := startAgent(t, bin, dir)
	prom := startPrometheus(t, dir, agentAddr, mgr.http)
	from := time.Now()
	prom.waitUp(t, 2)

	mgr.takeLocks(t, bin)
	runDrills(t, bin, dir)
	time.Sleep(3 * time.Second) // the end of the drills, scraped and evaluated
	to := time.Now()
	t.Logf("agent, manager, JVM, Prometheus and drills ran in %v; checking queries over %v",
		to.Sub(began).Round(time.Second), to.Sub(from).Round(time.Second))

	names := map[string]bool{}
	for _, addr := range []string{agentAddr, mgr.http} {
		for n := range exposedNames(t, "http://"+addr+"/metrics") {
			names[n] = true
		}
	}
	rules := loadRules(t)
	for _, r := range rules {
		if r.Record != "" {
			names[r.Record] = true
		}
	}

	c := &checker{t: t, prom: prom, from: from, to: to, names: names, used: map[string]bool{}, checked: map[string]bool{}}
	builtins := map[string]string{
		"__rate_interval": "5s", // Grafana's floor of 4 scrape intervals, rounded up
		"__interval":      "1s",
		"__range":         fmt.Sprintf("%ds", int(to.Sub(from).Seconds())),
	}
	for _, d := range loadDashboards(t) {
		vars := maps.Clone(builtins)
		for _, v := range d.Templating.List[1:] {
			m := labelValuesRE.FindStringSubmatch(fmt.Sprint(v.Query))
			if m == nil {
				t.Errorf("%s: variable %s: query %v is not label_values(<selector>, <label>)", d.file, v.Name, v.Query)
				continue
			}
			where := fmt.Sprintf("%s: variable %s", d.file, v.Name)
			sel := substitute(m[1], vars)
			c.checkSelectors(where, sel)
			values, err := prom.labelValues(m[2], sel, from, to)
			if err != nil || len(values) == 0 {
				t.Errorf("%s: label_values(%s, %s) = %q, %v; want values", where, sel, m[2], values, err)
				continue
			}
			vars[v.Name] = regexAlternation(values)
		}
		for _, q := range d.queries() {
			q.expr = substitute(q.expr, vars)
			if why, ok := mayBeEmpty[q.where]; ok {
				q.emptyOK, mayBeEmpty[q.where] = why, "" // "": the entry was used
			}
			c.check(q)
		}
	}
	for where, why := range mayBeEmpty {
		if why != "" {
			t.Errorf("mayBeEmpty names %s, which no dashboard has", where)
		}
	}
	for _, r := range rules {
		c.check(r.query())
		if r.Record != "" {
			c.check(query{where: fmt.Sprintf("%s: the series of record %s", r.file, r.Record), expr: r.Record})
		}
	}

	// The alerts the run's faults cause went pending or firing.
	for kind, alert := range diagnosisAlerts {
		reached := prom.hasData(t, fmt.Sprintf(`nerve_diagnosis{kind=%q} == 1`, kind), from, to)
		switch {
		case !reached && slices.Contains(requiredKind, kind):
			t.Errorf("the agent never diagnosed %s during the drills: the diagnosis panels and alerts were not exercised", kind)
		case !reached:
			t.Logf("the agent did not diagnose %s during this run; its alert is checked by the promtool tests only", kind)
		case !prom.hasData(t, fmt.Sprintf(`ALERTS{alertname=%q}`, alert), from, to):
			t.Errorf("the agent diagnosed %s but alert %s never went pending", kind, alert)
		}
	}
	for _, alert := range firedAlerts {
		if !prom.hasData(t, fmt.Sprintf(`ALERTS{alertname=%q}`, alert), from, to) {
			t.Errorf("alert %s never went pending or firing, though the run caused it", alert)
		}
	}
	// The slow_drive description names the worst device, from the recording rule.
	for _, a := range prom.alerts(t) {
		if a.Labels["alertname"] == "NerveSlowDrive" && !strings.Contains(a.Annotations["description"], "Worst device: loop") {
			t.Errorf("NerveSlowDrive description does not name the drill's loop device: %q", a.Annotations["description"])
		}
	}

	var unused []string
	for n := range names {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(n, "nerve_") && !c.used[n] && !c.used[base+"_bucket"] && !c.used[base+"_sum"] && !c.used[base+"_count"] {
			unused = append(unused, n)
		}
	}
	sort.Strings(unused)
	t.Logf("checked %d queries and %d selectors in %v; nerve metrics no dashboard or rule uses: %v",
		c.queries, len(c.checked), time.Since(to).Round(time.Millisecond), unused)
}

// checker runs queries against the live Prometheus and records what it saw.
type checker struct {
	t        *testing.T
	prom     *prometheus
	from, to time.Time
	names    map[string]bool // metric names on /metrics and recorded by rules
	used     map[string]bool // metric names the queries use
	checked  map[string]bool // selectors already checked
	queries  int
}

func (c *checker) check(q query) {
	t := c.t
	t.Helper()
	c.queries++
	if strings.Contains(q.expr, "$") {
		t.Errorf("%s: a variable is left after substitution: %s", q.where, q.expr)
		return
	}
	n, err := c.prom.query(q.expr, q.instant, c.from, c.to)
	switch {
	case err != nil:
		t.Errorf("%s: %v\n  %s", q.where, err, q.expr)
		return
	case n == 0 && q.alert == "" && q.emptyOK == "":
		t.Errorf("%s: returns no finite sample over the run\n  %s", q.where, q.expr)
	}
	c.checkSelectors(q.where, q.expr)
}

// checkSelectors checks that every metric a query names is exported, and
// that each selector returns data by itself.
func (c *checker) checkSelectors(where, expr string) {
	t := c.t
	t.Helper()
	sels, err := selectors(expr)
	if err != nil {
		t.Errorf("%s: %v\n  %s", where, err, expr)
		return
	}
	for _, sel := range sels {
		name := metricName(sel)
		c.used[name] = true
		if !c.names[name] && !synthetic[name] {
			t.Errorf("%s: metric %s is not on the agent's or the manager's /metrics, nor recorded by the rules", where, name)
			continue
		}
		if c.checked[sel] {
			continue
		}
		c.checked[sel] = true
		if n, err := c.prom.query(sel, false, c.from, c.to); err != nil || n == 0 {
			t.Errorf("%s: selector %s returns no data over the run (%v)", where, sel, err)
		}
	}
}

// substitute replaces Grafana variables ($name, ${name}) by their values;
// an unknown variable stays, for the caller to report.
func substitute(expr string, vars map[string]string) string {
	return varRE.ReplaceAllStringFunc(expr, func(s string) string {
		if v, ok := vars[varName(varRE.FindStringSubmatch(s))]; ok {
			return v
		}
		return s
	})
}

// regexAlternation is a multi-value variable as Grafana substitutes it in a
// =~ matcher: every value regex-escaped, joined by |, inside a PromQL string
// (so each backslash doubled).
func regexAlternation(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
	}
	if len(quoted) == 1 {
		return quoted[0]
	}
	return "(" + strings.Join(quoted, "|") + ")"
}

// exposedNames are the sample names of a /metrics page (histograms as their
// _bucket, _sum and _count).
func exposedNames(t *testing.T, u string) map[string]bool {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
	if len(names) == 0 {
		t.Fatalf("%s: no samples", u)
	}
	return names
}

// The processes.

// start runs a long-lived process until the test ends: then it is sent
// SIGINT and killed if it is still there 10 s later. It is killed too if the
// test binary dies first. Its output is logged when the test failed.
func start(t *testing.T, name string, argv ...string) *nervetest.SyncBuffer {
	t.Helper()
	out := &nervetest.SyncBuffer{}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	// Ends when the process exits; the cleanup below makes sure it does.
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop within 10s of SIGINT", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(out.String(), 8000))
		}
	})
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// waitHTTP waits until GET u answers 200 and ok accepts the body.
func waitHTTP(t *testing.T, name, u string, out *nervetest.SyncBuffer, ok func(body string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && (ok == nil || ok(string(b))) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready at %s within 30s; output:\n%s", name, u, tail(out.String(), 8000))
}

// startAgent runs `nerve agent` with every probe, BPF statistics, a target
// for the JVM, and the actuator on a 1 s tick with goals that enter at once
// (testdata/goals.yaml) and a nodetool that always fails, so that its
// decisions include failed actions.
func startAgent(t *testing.T, bin, dir string) string {
	t.Helper()
	goalsFile, err := filepath.Abs("testdata/goals.yaml")
	if err != nil {
		t.Fatal(err)
	}
	nodetool, err := exec.LookPath("false")
	if err != nil {
		t.Fatal(err)
	}
	addr := nervetest.FreeAddr(t)
	cfg := fmt.Sprintf(`actuator:
  tick: 1s
  state_dir: %[1]s/state
  dump_dir: %[1]s/state/dumps
  goals_file: %[2]s
  nodetool: %[3]s
targets:
  - name: cassandra
    process: java
bpf_stats: true
`, dir, goalsFile, nodetool)
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := start(t, "agent", bin, "agent", "--config.file="+path, "--web.listen-address="+addr)
	waitHTTP(t, "agent", "http://"+addr+"/healthz", out, nil)
	return addr
}

type managerReplica struct {
	http, token string
}

// startManager runs a single-replica `nerve manager run` and waits until it
// leads.
func startManager(t *testing.T, bin, dir string) *managerReplica {
	t.Helper()
	b := make([]byte, 16)
	rand.Read(b)
	m := &managerReplica{http: nervetest.FreeAddr(t), token: filepath.Join(dir, "manager-token")}
	if err := os.WriteFile(m.token, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raftAddr := nervetest.FreeAddr(t)
	out := start(t, "manager", bin, "manager", "run", "--id=m1", "--dir="+filepath.Join(dir, "manager"),
		"--bind="+raftAddr, "--http="+m.http, "--tokens-file="+m.token, "--bootstrap",
		"--peer=m1="+raftAddr+","+m.http)
	waitHTTP(t, "manager", "http://"+m.http+"/metrics", out, func(body string) bool {
		return strings.Contains(body, "\nnerve_manager_leader 1\n")
	})
	return m
}

// takeLocks gives the manager a grant that stays held, one whose 5 s lease
// lapses (a lease expiry, a suspect grant), and a refused request (409).
func (m *managerReplica) takeLocks(t *testing.T, bin string) {
	t.Helper()
	acquire := func(args ...string) ([]byte, error) {
		argv := append([]string{"--manager.endpoint=http://" + m.http, "--manager.token-file=" + m.token, "lock", "acquire"}, args...)
		return exec.Command(bin, argv...).CombinedOutput()
	}
	if out, err := acquire("--cluster=c1", "--rack=r1", "--node=n1", "--lease=5s"); err != nil {
		t.Fatalf("lock acquire: %v\n%s", err, out)
	}
	if out, err := acquire("--cluster=c2", "--rack=r1", "--node=n3", "--lease=10m"); err != nil {
		t.Fatalf("lock acquire: %v\n%s", err, out)
	}
	if out, err := acquire("--cluster=c1", "--rack=r2", "--node=n2", "--lease=10m"); err == nil || !bytes.Contains(out, []byte("409")) {
		t.Fatalf("lock acquire of a second rack of c1: %v, want a 409\n%s", err, out)
	}
}

// runDrills runs `nerve drill` as its own process; it must pass, or the
// agent saw no fault. SIGINT (and SIGTERM, should the test binary die) lets
// the drill remove its devices and cgroup.
func runDrills(t *testing.T, bin, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"drill", "--scratch=" + filepath.Join(dir, "scratch")}, liveDrills...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	began := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nerve drill %v: %v\n%s", liveDrills, err, out)
	}
	t.Logf("nerve drill %v passed in %v", liveDrills, time.Since(began).Round(time.Second))
}

// prometheus is a running Prometheus and its HTTP API.
type prometheus struct {
	base string
}

// startPrometheus runs Prometheus on a fresh TSDB, scraping the agent and
// the manager every second under the job names the rules expect, with the
// rules evaluated every second.
func startPrometheus(t *testing.T, dir, agent, manager string) *prometheus {
	t.Helper()
	var files []string
	for _, f := range ruleFiles(t) {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fmt.Sprintf("%q", abs))
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
  - job_name: nerve-agent
    static_configs: [{targets: [%q]}]
  - job_name: nerve-manager
    static_configs: [{targets: [%q]}]
`, strings.Join(files, ", "), agent, manager)
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "config", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	addr := nervetest.FreeAddr(t)
	out := start(t, "prometheus", "prometheus", "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=warn")
	waitHTTP(t, "prometheus", "http://"+addr+"/-/ready", out, nil)
	return &prometheus{base: "http://" + addr}
}

// waitUp waits until n targets have been scraped successfully.
func (p *prometheus) waitUp(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if got, err := p.query("up == 1", true, time.Now(), time.Now()); err == nil && got == n {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("Prometheus did not scrape %d targets within 30s", n)
}

// apiResponse is the envelope of every Prometheus API answer.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func (p *prometheus) get(path string, params url.Values, data any) error {
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s", r.ErrorType, resp.Status, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// query runs expr over [from, to] (a range query, step 1 s) or at to (an
// instant query) and returns how many series have a finite sample.
func (p *prometheus) query(expr string, instant bool, from, to time.Time) (int, error) {
	unix := func(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	var err error
	if instant {
		err = p.get("/api/v1/query", url.Values{"query": {expr}, "time": {unix(to)}}, &data)
	} else {
		err = p.get("/api/v1/query_range", url.Values{"query": {expr}, "start": {unix(from)}, "end": {unix(to)}, "step": {"1"}}, &data)
	}
	if err != nil {
		return 0, err
	}
	finite := func(v []any) bool {
		if len(v) != 2 {
			return false
		}
		s, _ := v[1].(string)
		f, err := strconv.ParseFloat(s, 64)
		return err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	switch data.ResultType {
	case "scalar":
		var v []any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return 0, err
		}
		if finite(v) {
			return 1, nil
		}
		return 0, nil
	case "vector", "matrix":
		var series []struct {
			Value  []any   `json:"value"`
			Values [][]any `json:"values"`
		}
		if err := json.Unmarshal(data.Result, &series); err != nil {
			return 0, err
		}
		n := 0
		for _, s := range series {
			ok := finite(s.Value)
			for _, v := range s.Values {
				ok = ok || finite(v)
			}
			if ok {
				n++
			}
		}
		return n, nil
	}
	return 0, fmt.Errorf("result type %q", data.ResultType)
}

func (p *prometheus) hasData(t *testing.T, expr string, from, to time.Time) bool {
	t.Helper()
	n, err := p.query(expr, false, from, to)
	if err != nil {
		t.Errorf("%s: %v", expr, err)
	}
	return n > 0
}

// labelValues is Grafana's label_values(selector, label) over [from, to].
func (p *prometheus) labelValues(label, selector string, from, to time.Time) ([]string, error) {
	var values []string
	err := p.get("/api/v1/label/"+label+"/values", url.Values{
		"match[]": {selector},
		"start":   {strconv.FormatInt(from.Unix(), 10)},
		"end":     {strconv.FormatInt(to.Unix()+1, 10)},
	}, &values)
	return values, err
}

type alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

// alerts are the alerts pending or firing now.
func (p *prometheus) alerts(t *testing.T) []alert {
	t.Helper()
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	if err := p.get("/api/v1/alerts", nil, &data); err != nil {
		t.Errorf("alerts: %v", err)
	}
	return data.Alerts
}
