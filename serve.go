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
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := b.Stop(stopCtx); err != nil {
		log.Warn("shutdown was not clean", zap.Error(err))
	}
	log.Info("actormq stopped")
	return 0
}
