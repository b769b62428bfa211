package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/supervisor"
)

// shutdownTimeout bounds a graceful stop: clients are told, queues flushed, actors stopped.
const shutdownTimeout = 5 * time.Second

// serve runs the broker until ctx is cancelled (SIGINT/SIGTERM), then stops it gracefully.
func serve(ctx context.Context, cfg config.Config, log *zap.Logger, stderr io.Writer) int {
	b, err := supervisor.Start(cfg, log)
	if err != nil {
		// A taken port or a similar start-up problem: one plain line, no stack trace.
		fmt.Fprintf(stderr, "actormq: %v\n", err)
		return 1
	}
	log.Info("actormq started")
	// SIGHUP reloads certificates, the password file and the ACL file without a restart.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			log.Info("SIGHUP: reloading certificates, password file and ACL file")
			_ = b.Reload() // logs what failed; the old files stay in use
		}
	}
	log.Info("shutting down")
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(again)
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return finish(func() error { return b.Stop(stopCtx) }, again, log)
}

// finish runs the graceful stop and returns the exit code, unless a second SIGINT or SIGTERM
// comes first: an operator who presses Ctrl-C again does not want to wait for a stop that is
// taking its time (clients slow to take their DISCONNECT, a store finishing its writes). What
// the broker acknowledged is written already, so the store recovers from that exit as from a
// crash.
func finish(stop func() error, again <-chan os.Signal, log *zap.Logger) int {
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			log.Warn("shutdown was not clean", zap.Error(err))
		}
		log.Info("actormq stopped")
		return 0
	case sig := <-again:
		log.Warn("a second signal during shutdown: exiting without waiting for it to finish", zap.String("signal", sig.String()))
		return 1
	}
}
