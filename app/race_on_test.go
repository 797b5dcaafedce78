//go:build race

package app

// raceEnabled: the race detector slows the in-process cluster several
// times over, so the end-to-end test sends fewer rides under it.
const raceEnabled = true
