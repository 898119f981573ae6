// Command write renders nerve's dashboards into the current directory (the
// dashboards package, when run by `go generate`), one JSON file each.
package main

import (
	"fmt"
	"os"

	"github.com/nervehq/nerve/dashboards"
)

func main() {
	for _, d := range dashboards.All() {
		b, err := d.JSON()
		if err != nil {
			fmt.Fprintf(os.Stderr, "write %s: %v\n", d.File, err)
			os.Exit(1)
		}
		if err := os.WriteFile(d.File, b, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "write %s: %v\n", d.File, err)
			os.Exit(1)
		}
	}
}
