package client

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nervehq/nerve/manager"
)

// The text forms below are what the nerve command prints for people; for
// programs it prints the JSON of the same values.

// WriteGrant writes one grant as a short block.
func WriteGrant(w io.Writer, g manager.Grant) error {
	var b strings.Builder
	fmt.Fprintf(&b, "grant %s token %d: %s\n", g.ID, g.Token, g.State)
	fmt.Fprintf(&b, "  rack      %s/%s\n", g.Cluster, g.Rack)
	fmt.Fprintf(&b, "  node      %s\n", g.Node)
	fmt.Fprintf(&b, "  operation %s (request %s)\n", g.Operation, g.RequestID)
	fmt.Fprintf(&b, "  granted   %s\n", stamp(g.Granted))
	fmt.Fprintf(&b, "  expires   %s\n", stamp(g.Expires))
	if g.Step != "" {
		fmt.Fprintf(&b, "  step      %s\n", g.Step)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteGrants writes grants as a table, or a line saying there are none.
func WriteGrants(w io.Writer, gs []manager.Grant) error {
	if len(gs) == 0 {
		_, err := fmt.Fprintln(w, "no grants: every rack is free")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTOKEN\tRACK\tNODE\tOPERATION\tSTATE\tEXPIRES\tSTEP")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%d\t%s/%s\t%s\t%s\t%s\t%s\t%s\n",
			g.ID, g.Token, g.Cluster, g.Rack, g.Node, g.Operation, g.State, stamp(g.Expires), dash(g.Step))
	}
	return tw.Flush()
}

// EventText is one history event on one line.
func EventText(ev manager.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s %s", ev.Index, stamp(ev.At), ev.Kind)
	if g := ev.Grant; g != nil {
		fmt.Fprintf(&b, " %s/%s node=%s op=%s grant=%s token=%d", g.Cluster, g.Rack, g.Node, g.Operation, g.ID, g.Token)
		if g.Step != "" {
			fmt.Fprintf(&b, " step=%q", g.Step)
		}
	}
	if ev.Detail != "" {
		fmt.Fprintf(&b, " %s", ev.Detail)
	}
	return b.String()
}

// WriteStatus writes a replica's view of the cluster of replicas.
func WriteStatus(w io.Writer, s Status) error {
	var b strings.Builder
	fmt.Fprintf(&b, "replica %s: %s\n", s.ID, s.State)
	leader := dash(s.Leader)
	if s.LeaderHTTP != "" {
		leader += " (api " + s.LeaderHTTP + ")"
	}
	fmt.Fprintf(&b, "leader   %s\n", leader)
	fmt.Fprintf(&b, "index    applied %d, last %d\n", s.AppliedIndex, s.LastIndex)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if len(s.Peers) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tRAFT ADDRESS\tAPI\tSUFFRAGE")
	for _, p := range s.Peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, dash(p.Address), dash(p.HTTP), dash(p.Suffrage))
	}
	return tw.Flush()
}

// WriteGoals writes the merged goals, then each level's own document.
func WriteGoals(w io.Writer, g Goals) error {
	var b strings.Builder
	b.WriteString("# merged\n")
	b.WriteString(block(g.Merged))
	for _, l := range manager.Levels {
		doc, ok := g.Levels[l]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "\n# level %s\n", l)
		b.WriteString(block(doc))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func block(doc string) string {
	if strings.TrimSpace(doc) == "" {
		return "# (empty)\n"
	}
	if !strings.HasSuffix(doc, "\n") {
		doc += "\n"
	}
	return doc
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
