// Package dashboards holds nerve's Grafana dashboards and Prometheus rules,
// and the proof that they query what the agent and the manager really export.
//
// The dashboards are written in Go (node_health.go, decisions.go,
// manager.go, self.go) on a small model of Grafana's JSON (model.go), so that
// every dashboard has the same data source variable, variables, units and
// layout; `go generate` writes them to the *.json files operators import. The
// rules under rules/ are plain Prometheus YAML with promtool unit tests.
//
// # Promises
//
//   - The committed JSON is what the Go definitions render (TestGenerated).
//   - Every panel, annotation and variable query, and every rule, runs on a
//     real Prometheus scraping a real agent and manager during real faults,
//     returns data, and names only metrics that the agent, the manager or
//     the rules export (TestLive, privileged).
//   - Every data source reference is the ${datasource} variable, so the JSON
//     imports into any Grafana with a Prometheus data source.
package dashboards
