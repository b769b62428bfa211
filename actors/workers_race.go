//go:build race

package actors

// workersParked is 0 in race builds: every turn gets a goroutine of its own (see Workers).
const workersParked = 0
