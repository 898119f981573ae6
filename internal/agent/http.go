package agent

import (
	"fmt"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nervehq/nerve/actuator/report"
	"github.com/nervehq/nerve/internal/config"
)

var indexPage = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html>
<head><title>nerve</title></head>
<body>
<h1>nerve</h1>
<p>eBPF node-health agent.</p>
<ul>
<li><a href="{{.Metrics}}">Metrics</a></li>
<li><a href="{{.Health}}">Health</a></li>
</ul>
</body>
</html>
`))

// handler serves the metrics at telemetryPath, /healthz and an index page.
func (a *agent) handler(telemetryPath string) http.Handler {
	metrics := promhttp.InstrumentMetricHandler(a.registry, promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{
		ErrorLog: scrapeErrorLog{a.logger},
		// One probe's broken series must not cost Prometheus the rest.
		ErrorHandling: promhttp.ContinueOnError,
		// Concurrent scrapes each read every BPF map; more than a few at
		// once is a misconfiguration, not a need.
		MaxRequestsInFlight: 4,
	}))

	mux := http.NewServeMux()
	mux.Handle("GET "+telemetryPath, metrics)
	mux.HandleFunc("GET "+config.HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !a.serving.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "shutting down")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if a.act != nil {
		decisions := report.Handler(a.act.reports)
		mux.Handle("GET /decisions", decisions)
		mux.Handle("GET /decisions/{id}", decisions)
	}
	a.flight.routes(mux)
	// "{$}" matches "/" only, so unknown paths get 404, not the index.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		err := indexPage.Execute(w, struct{ Metrics, Health string }{telemetryPath, config.HealthPath})
		if err != nil {
			a.logger.Debug("write index page", "err", err)
		}
	})
	return mux
}

// scrapeErrorLog passes promhttp's errors to the agent's logger.
type scrapeErrorLog struct{ logger *slog.Logger }

func (l scrapeErrorLog) Println(v ...any) {
	l.logger.Error("metrics scrape", "err", fmt.Sprint(v...))
}
