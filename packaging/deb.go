package packaging

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

// File is one file an install puts on the machine.
type File struct {
	Src  string // in the source tree, relative to its root; the binary's path as given
	Dst  string // where the package installs it
	Mode fs.FileMode
	// Config is a configuration file: the package keeps an admin's changes
	// (a dpkg conffile) and `make install` leaves an existing one alone.
	Config bool
}

// Files lists what an install puts where, as the package lays it out
// (PREFIX=/usr): the binary bin, and from the source tree at root the units,
// the configuration files, the dashboards and the recording rules. The
// Makefile's install target installs the same list (TestInstallMatchesDeb).
func Files(root, bin string) ([]File, error) {
	out := []File{
		{Src: bin, Dst: "/usr/bin/nerve", Mode: 0o755},
		{Src: "packaging/systemd/nerve-agent.service", Dst: "/lib/systemd/system/nerve-agent.service", Mode: 0o644},
		{Src: "packaging/systemd/nerve-manager.service", Dst: "/lib/systemd/system/nerve-manager.service", Mode: 0o644},
		{Src: "packaging/nerve.yml", Dst: "/etc/nerve/nerve.yml", Mode: 0o644, Config: true},
		{Src: "packaging/manager.flags", Dst: "/etc/nerve/manager.flags", Mode: 0o644, Config: true},
	}
	for _, g := range []struct{ glob, dst string }{
		{"dashboards/*.json", "/usr/share/nerve/dashboards"},
		{"dashboards/rules/*.yml", "/usr/share/nerve/dashboards/rules"},
	} {
		matches, err := filepath.Glob(filepath.Join(root, g.glob))
		if err != nil {
			return nil, err
		}
		sort.Strings(matches)
		for _, m := range matches {
			name := filepath.Base(m)
			if strings.HasSuffix(name, "_test.yml") { // promtool rule tests
				continue
			}
			out = append(out, File{Src: filepath.Join(filepath.Dir(g.glob), name), Dst: g.dst + "/" + name, Mode: 0o644})
		}
	}
	return out, nil
}

// DebOptions say what BuildDeb packages.
type DebOptions struct {
	Root    string // the source tree
	Bin     string // the nerve binary; built with CGO_ENABLED=0, or it cannot drop capabilities
	Version string // as `git describe --tags` gives it ("v1.2.3", "dev"); see DebVersion
	Arch    string // GOARCH
	OutDir  string // where the .deb is written
}

// BuildDeb writes OutDir/nerve_<version>_<arch>.deb and returns its path.
// The package depends on nothing (the binary is static) and does not enable
// or start the units; its scripts are deb/postinst, prerm and postrm.
func BuildDeb(o DebOptions) (string, error) {
	if o.Root == "" || o.Bin == "" || o.Arch == "" || o.OutDir == "" {
		return "", errors.New("build deb: Root, Bin, Arch and OutDir are required")
	}
	list, err := Files(o.Root, o.Bin)
	if err != nil {
		return "", fmt.Errorf("build deb: %w", err)
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(o.Root, p)
	}
	var contents files.Contents
	for _, f := range list {
		c := &files.Content{
			Source: abs(f.Src), Destination: f.Dst,
			FileInfo: &files.ContentFileInfo{Mode: f.Mode, Owner: "root", Group: "root"},
		}
		if f.Config {
			c.Type = files.TypeConfigNoReplace
		}
		contents = append(contents, c)
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          "nerve",
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       DebVersion(o.Version),
		VersionSchema: "none",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    "nerve maintainers <https://github.com/nervehq/nerve>",
		Homepage:      "https://github.com/nervehq/nerve",
		Description: "eBPF node-health agent for Cassandra nodes\n" +
			"nerve observes block I/O, run-queue delay, page-fault stalls and JVM\n" +
			"safepoints with CO-RE eBPF programs, diagnoses slow drives, overload and\n" +
			"queries of death, and acts through an action ladder, coordinated across\n" +
			"a rack by a Raft-replicated lock manager (nerve-manager.service).",
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: abs("packaging/deb/postinst"),
				PreRemove:   abs("packaging/deb/prerm"),
				PostRemove:  abs("packaging/deb/postrm"),
			},
		},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("build deb: %w", err)
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return "", fmt.Errorf("build deb: %w", err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", fmt.Errorf("build deb: %w", err)
	}
	path := filepath.Join(o.OutDir, pkg.ConventionalFileName(info))
	// Written beside and renamed, so a failed build leaves no partial .deb.
	tmp, err := os.CreateTemp(o.OutDir, ".nerve-*.deb")
	if err != nil {
		return "", fmt.Errorf("build deb: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := pkg.Package(info, tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("build deb: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("build deb: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("build deb: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("build deb: %w", err)
	}
	return path, nil
}

// DebVersion makes a Debian version of a `git describe --tags` version:
// "v1.2.3" is 1.2.3, "v1.2.3-4-gabcdef-dirty" is 1.2.3+4.gabcdef.dirty (after
// 1.2.3, as a later commit is), and one that does not start with a digit,
// like "dev", sorts before every release: 0.0.0~dev.
func DebVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	if v == "" || v[0] < '0' || v[0] > '9' {
		v = "0.0.0~" + v
	}
	// A hyphen would start the Debian revision; other characters dpkg
	// refuses become dots.
	v = strings.Replace(v, "-", "+", 1)
	return strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '.', r == '+', r == '~':
			return r
		}
		return '.'
	}, strings.TrimSuffix(v, "~"))
}
