// Command actormq is an MQTT 3.1, 3.1.1 and 5.0 broker built on the actor model.
//
// On first run it writes config.toml (every key at its default, each with a comment) and serves
// the listeners configured there. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/actormq/actormq/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is main without the process exit, so that the start-up path can be tested.
// Errors reach the user as one plain line on stderr, never as a stack trace.
func run(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "passwd" {
		return passwd(args[1:], os.Stdin, stderr)
	}
	fs := flag.NewFlagSet("actormq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "config.toml", "path of the configuration file (written with defaults if missing)")
	check := fs.Bool("check", false, "load and validate the configuration (writing it if missing), then exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	cfg, created, err := config.Load(*configPath)
	if err == nil {
		err = cfg.ApplyEnv(os.Getenv)
	}
	if err != nil {
		fmt.Fprintf(stderr, "actormq: %v\n", err)
		return 1
	}
	if *check {
		fmt.Fprintf(stderr, "actormq: %s is valid\n", *configPath)
		return 0
	}

	log, err := newLogger(cfg.Log)
	if err != nil {
		fmt.Fprintf(stderr, "actormq: %v\n", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	if created {
		log.Info("wrote a default configuration file; edit it and restart to change settings", zap.String("path", *configPath))
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log, stderr)
}
