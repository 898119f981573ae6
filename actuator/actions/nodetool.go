package actions

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultNodetoolTimeout bounds a nodetool call when Nodetool.Timeout is 0.
// nodetool starts a JVM and talks JMX, which takes seconds on a busy node.
const DefaultNodetoolTimeout = 60 * time.Second

// Nodetool runs one nodetool command against the local database: rung 1,
// live control. The commands the ladder uses set a value, so running one
// twice is harmless.
type Nodetool struct {
	Path    string        // the nodetool program; "" means "nodetool" on PATH
	Args    []string      // e.g. {"setcompactionthroughput", "16"}
	Timeout time.Duration // 0 means DefaultNodetoolTimeout
}

// SetCompactionThroughput caps compaction at mibPerSec MiB/s (0 is
// unthrottled): for disk_overload.
func SetCompactionThroughput(path string, mibPerSec int) Nodetool {
	return Nodetool{Path: path, Args: []string{"setcompactionthroughput", strconv.Itoa(mibPerSec)}}
}

// SetConcurrentCompactors sets how many compactions may run at once: for
// disk_overload.
func SetConcurrentCompactors(path string, n int) Nodetool {
	return Nodetool{Path: path, Args: []string{"setconcurrentcompactors", strconv.Itoa(n)}}
}

// Run runs nodetool with Args. The error names the program and its
// arguments; the result holds nodetool's output for the report either way.
func (n Nodetool) Run(ctx context.Context) (CommandResult, error) {
	path := n.Path
	if path == "" {
		path = "nodetool"
	}
	timeout := n.Timeout
	if timeout == 0 {
		timeout = DefaultNodetoolTimeout
	}
	argv := append([]string{path}, n.Args...)
	res, err := runCommand(ctx, argv, nil, timeout, 0)
	if err != nil {
		return res, fmt.Errorf("nodetool %q %s: %w", path, strings.Join(n.Args, " "), err)
	}
	return res, nil
}
