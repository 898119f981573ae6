// Package ladder chooses, for a diagnosis, the least risky action that can
// clear it, and guards it: rate limits per action, a crash-loop guard on
// database restarts, per-rung modes, and the rack lock for any rung that
// stops the database.
//
// The ladder starts a diagnosis at the lowest rung whose action can clear
// its kind, and goes up one rung only when the same diagnosis (kind and
// subject) is still there EscalateAfter after the last action taken for it.
// A diagnosis whose Since is later than that action is a new episode and
// starts again at the bottom.
//
// The ladder is deterministic: it never reads the clock; every time comes
// from its arguments, so a test or a replayed log decides the same way.
// Every Plan explains itself: each rung looked at, and why it was not taken.
package ladder
