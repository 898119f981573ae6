// Package yamlfield words the errors of decoding a YAML document into a Go
// struct with gopkg.in/yaml.v3 for the person who wrote the document. yaml.v3
// names a line and a Go type ("line 7: cannot unmarshal !!str `x` into
// int"); Explain names the field by its YAML path and says what belongs
// there: "line 7: probes.blockio.max_devices: must be an integer, got "x"".
// The agent's configuration (internal/config) and the operator's goals
// (actuator/goals) report their errors through it.
//
// It promises that Explain returns every problem yaml.v3 reported, as Errors
// (errors.As finds each *FieldError), each message on one line; and that a
// path it names is a key the document holds: when the line alone cannot tell
// which key is meant, it names none rather than a wrong one.
package yamlfield
