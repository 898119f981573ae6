// Package config holds the agent's configuration: its schema, the defaults
// the agent runs on when no file is given (default.yaml, embedded), and the
// checks a configuration must pass before anything acts on it.
//
// It promises that a *Config returned by Load or Parse has passed Validate,
// that a user file only overrides the fields it names, and that every error
// names the offending field by its YAML path (for example
// probes.blockio.buckets_per_octave) and, where YAML reports one, the line.
//
// To add a setting: add the field with its yaml tag, its default to
// default.yaml, and its check to Validate. Load, Parse and Changed need no
// change.
package config
