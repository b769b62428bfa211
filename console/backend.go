// Package console serves the broker's introspection console on its own http.ServeMux: a JSON
// API (/api/v1/...), a web page (/), Prometheus metrics (/metrics) and health checks.
//
// The console never messages an actor to answer a read, except the router shards for their
// retained messages and trie sizes, which it asks with a timeout: a stuck actor cannot hang it.
// It reads everything through a Backend, which the supervisor implements; tests use a fake.
package console

import (
	"context"
	"errors"
	"time"

	"github.com/actormq/actormq/actors"
	"github.com/actormq/actormq/config"
)

// Errors a Backend returns, mapped to HTTP status codes.
var (
	ErrNotFound   = errors.New("not found")
	ErrBadRequest = errors.New("bad request")
	ErrTimeout    = errors.New("timed out")
)

// Backend is what the console reads and, with chaos on, acts on.
type Backend interface {
	Actors() []ActorInfo
	// Kill stops (mode "stop") or crashes through supervision (mode "panic") an actor.
	Kill(id, mode string) error
	Clients() []actors.ClientView
	Client(id string) (actors.ClientView, bool)
	// Disconnect closes a connected client's connection (DISCONNECT 0x98 in 5.0).
	Disconnect(clientID string) error
	// Router describes every shard; a shard that does not answer in time has Error set.
	Router(ctx context.Context) []ShardInfo
	// Retained lists retained messages matching filter ("" for all), sorted by topic.
	Retained(ctx context.Context, filter string) ([]actors.RetainedView, error)
	Stats() *actors.Stats
	Directory() *actors.Directory
	// Totals are the per-client sums /metrics needs, without a view per client.
	Totals() actors.Totals
	Config() config.Config
	StartedAt() time.Time
	// RestartsByKind counts restarts of actors by kind since start, dead actors included.
	RestartsByKind() map[string]uint64
	// Listeners are the accept loops (plain goroutines, not actors).
	Listeners() []ListenerInfo
}

// ListenerInfo is one bound listener.
type ListenerInfo struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Address  string `json:"address"`
	Protocol string `json:"protocol"`
}

// ActorInfo is one actor of the supervision tree.
type ActorInfo struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	Kind              string    `json:"kind"`
	Parent            string    `json:"parent"`
	Children          []string  `json:"children"`
	MailboxDepth      int64     `json:"mailbox_depth"`
	MailboxCapacity   int       `json:"mailbox_capacity"` // 0: unbounded (backpressure is by credits)
	MessagesProcessed uint64    `json:"messages_processed"`
	Restarts          uint64    `json:"restarts"`
	LastFailure       *Failure  `json:"last_failure,omitempty"`
	StartedAt         time.Time `json:"started_at"`
}

// Failure is the last failure of an actor, as its supervisor saw it.
type Failure struct {
	Reason    string    `json:"reason"`
	Directive string    `json:"directive"`
	At        time.Time `json:"at"`
}

// ShardInfo is one router shard.
type ShardInfo struct {
	actors.ShardView
	Actor          string `json:"actor"`
	MessagesRouted uint64 `json:"messages_routed"`
	MailboxDepth   int64  `json:"mailbox_depth"`
	Error          string `json:"error,omitempty"`
}
