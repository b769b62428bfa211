//go:build race

package hostile

// raceEnabled: the race detector slows the broker about tenfold; the heaviest floods are
// scaled down under it (their bounds hold either way).
const raceEnabled = true
