// Package docgen writes nerve's reference documentation (docs/) from the
// program itself, so that it cannot drift from it: the command line from
// kingpin's model, the configuration and goals files from their Go types,
// their doc comments and their embedded default files, the metrics from
// the registries the agent and a manager replica build, and the decision
// report from its Go types and a decision made by the real rules and
// ladder. `nerve docs` runs it; `make docs` writes docs/ and
// `make check-docs` fails when docs/ differs from what it writes.
//
// It promises output that depends only on the program and its source tree:
// sorted, with no time, host name, device, CPU count or other value of the
// machine it runs on (label values are left out, defaults that are the
// host's name are named as such). It fails, writing nothing, when a
// configuration key, goals key or report field has no description, when
// a probe cannot attach, or when the source tree's default files are not
// the ones compiled in.
package docgen
