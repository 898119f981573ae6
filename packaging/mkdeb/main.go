// Command mkdeb builds nerve's Debian package: `make deb` runs it after
// `make build`. It prints the package's path.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/nervehq/nerve/packaging"
)

func main() {
	var o packaging.DebOptions
	flag.StringVar(&o.Root, "root", ".", "the source tree")
	flag.StringVar(&o.Bin, "bin", "bin/nerve", "the nerve binary to package")
	flag.StringVar(&o.Version, "version", "dev", "the version, as `git describe --tags` prints it")
	flag.StringVar(&o.Arch, "arch", runtime.GOARCH, "the binary's GOARCH")
	flag.StringVar(&o.OutDir, "out", "dist", "where to write the .deb")
	flag.Parse()
	path, err := packaging.BuildDeb(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkdeb: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
