// Package journal runs an action's steps crash-only: before and after each
// step it checkpoints the action in flight to a file in the state directory,
// so an agent that was killed at any point can, on its next start, find the
// action (Pending) and continue it (Resume) without repeating a step it had
// recorded as done.
//
// What it promises. A checkpoint is durable when Run or Resume moves on: the
// record is written to a temporary file, fsynced, renamed over the old one,
// and the directory is fsynced, so a crash leaves either the old record or
// the new one, never a mix. A step recorded done is never run again for that
// action. A step that was started but not recorded done (the agent died
// inside it, or between its end and the checkpoint) is run again: every step
// must be idempotent, safe to run a second time after a partial or complete
// first run.
//
// Records are JSON, indented, one file per action (<id>.json), readable by a
// human with cat. A file that does not parse is set aside as
// <id>.json.corrupt and reported in a *CorruptError naming it; the package
// never panics on what it reads.
package journal
