package docgen

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alecthomas/kingpin/v2"
)

// writeCLI writes the command-line reference from kingpin's model of the
// command line: every command that is not hidden, its flags and arguments.
func writeCLI(w io.Writer, app *kingpin.ApplicationModel) error {
	fmt.Fprint(w, "# Command-line reference\n\n")
	fmt.Fprintf(w, "Every command and flag of `%s`, from its command-line model; `%s --help` and\n"+
		"`%s <command> --help` print the same.\n\n", app.Name, app.Name, app.Name)
	fmt.Fprintf(w, "%s\n\n", helpMarkdown(app.Help))
	fmt.Fprintf(w, "```\nusage: %s [<flags>] <command> [<args> ...]\n```\n\n", app.Name)

	fmt.Fprint(w, "## Global flags\n\nGiven before or after the command; they apply to every command that uses them.\n\n")
	writeFlags(w, app.Flags)

	fmt.Fprint(w, "## Commands\n\n| command | description |\n|---|---|\n")
	var cmds []*kingpin.CmdModel
	var walk func([]*kingpin.CmdModel)
	walk = func(cs []*kingpin.CmdModel) {
		for _, c := range cs {
			if c.Hidden {
				continue
			}
			cmds = append(cmds, c)
			walk(c.Commands)
		}
	}
	walk(app.Commands)
	for _, c := range cmds {
		fmt.Fprintf(w, "| [`%s %s`](#%s) | %s |\n", app.Name, c.FullCommand, anchor(app.Name+" "+c.FullCommand), cell(firstSentence(c.Help)))
	}
	fmt.Fprintln(w)
	for _, c := range cmds {
		writeCommand(w, app.Name, c)
	}
	return nil
}

func writeCommand(w io.Writer, name string, c *kingpin.CmdModel) {
	level := strings.Repeat("#", min(c.Depth+1, 4))
	fmt.Fprintf(w, "%s `%s %s`\n\n", level, name, c.FullCommand)
	fmt.Fprintf(w, "%s\n\n", helpMarkdown(c.Help))
	if c.HelpLong != "" && c.HelpLong != c.Help {
		fmt.Fprintf(w, "%s\n\n", helpMarkdown(c.HelpLong))
	}
	usage := name + " " + c.FullCommand
	if s := c.FlagSummary(); s != "" {
		usage += " " + s
	}
	for _, a := range c.Args {
		h := "<" + a.Name + ">"
		if isCumulative(a.Value) {
			h += "..."
		}
		if !a.Required {
			h = "[" + h + "]"
		}
		usage += " " + h
	}
	if len(c.Commands) > 0 {
		usage += " <command>"
	}
	fmt.Fprintf(w, "```\n%s\n```\n\n", usage)
	if c.Default {
		fmt.Fprintf(w, "The default subcommand: `%s %s` runs it.\n\n", name, c.FullCommand[:strings.LastIndex(c.FullCommand, " ")])
	}
	if visible(c.Flags) > 0 {
		if len(c.Commands) > 0 {
			fmt.Fprint(w, "Flags (for its subcommands too):\n\n")
		} else {
			fmt.Fprint(w, "Flags:\n\n")
		}
		writeFlags(w, c.Flags)
	}
	if len(c.Args) > 0 {
		fmt.Fprint(w, "Arguments:\n\n| argument | default | description |\n|---|---|---|\n")
		for _, a := range c.Args {
			if a.Hidden {
				continue
			}
			def := strings.Join(a.Default, ", ")
			if a.Required {
				def = "required"
			}
			help := a.Help
			if isCumulative(a.Value) {
				help += " (Repeatable.)"
			}
			fmt.Fprintf(w, "| `<%s>` | %s | %s |\n", a.Name, code(def), cell(help))
		}
		fmt.Fprintln(w)
	}
}

func visible(fs []*kingpin.FlagModel) int {
	n := 0
	for _, f := range fs {
		if !f.Hidden {
			n++
		}
	}
	return n
}

func writeFlags(w io.Writer, fs []*kingpin.FlagModel) {
	fmt.Fprint(w, "| flag | default | description |\n|---|---|---|\n")
	for _, f := range fs {
		if f.Hidden {
			continue
		}
		flag := "--" + f.Name
		switch {
		case f.Name == "help":
		case f.IsBoolFlag():
			flag = "--[no-]" + f.Name
		case f.PlaceHolder != "":
			flag += "=" + f.PlaceHolder
		default:
			flag += "=" + strings.ToUpper(f.Name[strings.LastIndex(f.Name, ".")+1:])
		}
		if f.Short != 0 {
			flag = fmt.Sprintf("-%c, %s", f.Short, flag)
		}
		def := hostNeutral(strings.Join(f.Default, ", "))
		if f.Required {
			def = "required"
		}
		help := f.Help
		if isCumulative(f.Value) {
			help += " (Repeatable.)"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", flag, code(def), cell(help))
	}
	fmt.Fprintln(w)
}

// isCumulative says whether a flag may be given more than once.
func isCumulative(v kingpin.Value) bool {
	c, ok := v.(interface{ IsCumulative() bool })
	return ok && c.IsCumulative()
}

// hostNeutral replaces a default that is this machine's (its host name,
// the user running it) with what it stands for, so that the reference is
// the same wherever it is generated.
func hostNeutral(def string) string {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	switch {
	case def == "":
		return ""
	case host != "" && def == host:
		return "the host name"
	case host != "" && def == user+"@"+host:
		return "$USER@the host name"
	}
	return def
}

func code(s string) string {
	switch s {
	case "", "required", "the host name", "$USER@the host name":
		return s
	}
	return "`" + s + "`"
}

// cell makes text fit in a table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

// helpMarkdown writes kingpin help text (paragraphs split by blank lines,
// indented lines preformatted, as kingpin prints them) as markdown.
func helpMarkdown(s string) string {
	return textToMarkdown(strings.Split(strings.TrimSpace(s), "\n"))
}

func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for i := 0; ; {
		j := strings.Index(s[i:], ". ")
		if j < 0 {
			return s
		}
		i += j + 1
		if !strings.HasSuffix(s[:i], "e.g.") && !strings.HasSuffix(s[:i], "i.e.") {
			return s[:i]
		}
	}
}

// anchor is the id GitHub gives the heading "`text`".
func anchor(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}
