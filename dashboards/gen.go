package dashboards

//go:generate go run ./internal/write
