//go:build !race

package actors

// workersParked bounds Workers' parked workers; race builds park none (see Workers).
const workersParked = maxIdleWorkers
