package pagefault

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nervehq/nerve/probes/flight"
	"github.com/nervehq/nerve/probes/outlier"
)

// startOutliers starts the reader of pagefault_outliers; Close stops it.
func (p *Probe) startOutliers() (*outlier.Reader, error) {
	clock := outlier.NewClock()
	maps := newMappings(p.cfg.Resolver.Proc)
	sink := p.cfg.Outliers
	decode := decoder()
	return outlier.Start(p.logger, p.k.outliers, func(raw []byte) {
		e, err := decode(raw, clock)
		if err != nil {
			p.logger.Warn("decode page-fault outlier", "err", err)
			return
		}
		if file, off, ok := maps.resolve(e.PID, e.PageFault.Address, time.Now()); ok {
			e.PageFault.File, e.PageFault.Offset = file, off
		}
		sink.Record(e)
	})
}

// OutlierDrops counts the outliers the kernel could not deliver since the
// probe started, read now; zero without BPF or when the counters cannot be
// read.
func (p *Probe) OutlierDrops() flight.Drops {
	if p.k == nil {
		return flight.Drops{}
	}
	d, err := outlier.ReadDrops(p.k.outlierDrops)
	if err != nil {
		p.logger.Warn("read outlier drops", "err", err)
	}
	return d
}

// mapsTTL is how long a process's mappings are trusted for an address they
// contain. An address they do not contain reads them again at once: the
// mapping may be newer than the cached copy.
const mapsTTL = 2 * time.Second

// mappings resolves user addresses to files through /proc/<pid>/maps, read
// when an outlier arrives (the process may have exited by then, and its
// address then stays unresolved). Used by the reader goroutine only.
type mappings struct {
	proc  string
	cache map[int]pidMaps // by tgid
}

type pidMaps struct {
	at   time.Time
	maps []mapping
}

// mapping is one file mapping of /proc/<pid>/maps.
type mapping struct {
	start, end, offset uint64
	path               string
}

func newMappings(proc string) *mappings {
	return &mappings{proc: proc, cache: map[int]pidMaps{}}
}

// resolve finds the file mapped at addr in process pid and the byte offset
// in that file; ok is false for anonymous memory or an unreadable process.
func (m *mappings) resolve(pid int, addr uint64, now time.Time) (file string, off uint64, ok bool) {
	c, cached := m.cache[pid]
	if cached && now.Sub(c.at) < mapsTTL {
		if f, o, ok := lookup(c.maps, addr); ok {
			return f, o, true
		}
	}
	if len(m.cache) >= 1024 {
		for k, v := range m.cache {
			if now.Sub(v.at) >= mapsTTL {
				delete(m.cache, k)
			}
		}
	}
	maps, err := readMaps(filepath.Join(m.proc, strconv.Itoa(pid), "maps"))
	if err != nil {
		delete(m.cache, pid)
		return "", 0, false
	}
	if len(m.cache) < 1024 {
		m.cache[pid] = pidMaps{at: now, maps: maps}
	}
	return lookup(maps, addr)
}

func lookup(maps []mapping, addr uint64) (string, uint64, bool) {
	for _, mp := range maps {
		if addr >= mp.start && addr < mp.end {
			return mp.path, mp.offset + (addr - mp.start), true
		}
	}
	return "", 0, false
}

// readMaps reads the file mappings of /proc/<pid>/maps; anonymous and
// special mappings ([heap], [stack], [vdso], ...) are left out.
func readMaps(path string) ([]mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m, ok, err := parseMapsLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if ok {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// parseMapsLine reads "start-end perms offset dev inode   path"; ok is
// false for a mapping that is not a file's (no path, inode 0, or a
// bracketed name). The path is the rest of the line after the padding, so
// it may hold spaces (and ends in " (deleted)" for a removed file).
func parseMapsLine(line string) (m mapping, ok bool, err error) {
	var f [5]string
	rest := line
	for i := range f {
		rest = strings.TrimLeft(rest, " ")
		var found bool
		f[i], rest, found = strings.Cut(rest, " ")
		if !found && i < 4 {
			return m, false, fmt.Errorf("short maps line %q", line)
		}
	}
	m.path = strings.TrimLeft(rest, " ")
	if m.path == "" || f[4] == "0" || strings.HasPrefix(m.path, "[") {
		return m, false, nil
	}
	lo, hi, found := strings.Cut(f[0], "-")
	if !found {
		return m, false, fmt.Errorf("bad range in maps line %q", line)
	}
	if m.start, err = strconv.ParseUint(lo, 16, 64); err == nil {
		if m.end, err = strconv.ParseUint(hi, 16, 64); err == nil {
			m.offset, err = strconv.ParseUint(f[2], 16, 64)
		}
	}
	if err != nil {
		return m, false, fmt.Errorf("bad number in maps line %q: %w", line, err)
	}
	return m, true, nil
}
