// Package packaging installs nerve on a machine: the systemd units
// (systemd/), the configuration files the package ships (nerve.yml,
// manager.flags), the Debian package's scripts (deb/), and BuildDeb, which
// `make deb` runs through mkdeb.
//
// Promises, each checked by a test here:
//
//   - The units pass `systemd-analyze verify`, both as `make install` writes
//     them and as the package installs them.
//   - `make install` (DESTDIR, PREFIX) and the .deb install the same files
//     with the same contents (Files is the one list).
//   - nerve.yml loads as `nerve agent --config.file` reads it, and keeps all
//     the agent writes under the unit's StateDirectory.
//   - The unit's CapabilityBoundingSet is what the probes need, and no more:
//     the real binary, run under that set with each capability taken out in
//     turn, attaches every probe only with the whole set (caps_test.go); and
//     after attach the agent holds only what its configuration needs.
//   - The package installs with dpkg -i on a machine where systemd is not
//     PID 1, and the agent it installs starts from the unit's ExecStart, in a
//     sandbox like the unit's, and serves metrics promtool accepts.
package packaging
