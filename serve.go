package main

import (
	"context"
	"fmt"
	"io"
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
	<-ctx.Done()
	log.Info("shutting down")
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := b.Stop(stopCtx); err != nil {
		log.Warn("shutdown was not clean", zap.Error(err))
	}
	log.Info("actormq stopped")
	return 0
}
