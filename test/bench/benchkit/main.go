package benchkit

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
)

// Main runs a benchmark command and exits with the status run returns. Log
// lines start with name and no time stamp. ctx ends on SIGINT or SIGTERM, so
// that run can stop its load and tracers and put the machine back as it was.
func Main(name string, run func(ctx context.Context) int) {
	log.SetFlags(0)
	log.SetPrefix(name + ": ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx)
	stop()
	os.Exit(code)
}

// NeedLibbpfTool fails unless the libbpf-tools program name is at path.
func NeedLibbpfTool(name, path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s: %w (sudo make deps installs libbpf-tools)", name, err)
	}
	return nil
}
