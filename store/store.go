// Package store keeps what must survive a broker restart: sessions, their queued and inflight
// messages, inbound QoS 2 packet ids and retained messages.
//
// Actors never block on disk: they fill a Batch, hand it to Store.Commit and carry on; the done
// callback tells them when the batch is durable (a session acknowledges a QoS 1/2 publish to its
// publisher only then). Two implementations share the interface: NewMemory (persistence off,
// state survives an actor restart but not a process restart) and Open (pebble, on disk).
package store

import (
	"errors"
	"strconv"
	"time"

	"github.com/actormq/actormq/codec"
)

// SessionRecord is a session as stored: everything needed to rebuild it after a restart.
type SessionRecord struct {
	ClientID       string
	User           string    // the user who made it ("" anonymous): it is not handed to another
	Version        byte      // protocol level 3, 4, 5
	Expiry         uint32    // session expiry interval, seconds (0xFFFFFFFF never)
	DisconnectedAt time.Time // zero while connected
	Will           *codec.Will
	WillDelay      uint32
	Subscriptions  []SubscriptionRecord
}

// SubscriptionRecord is one subscription of a session, with its options.
type SubscriptionRecord struct {
	Filter            string // as the client wrote it, $share prefix included
	QoS               byte   // the granted QoS
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubscriptionID    uint32
}

// MessageState is where an outbound message stands in the QoS 1/2 flow.
type MessageState byte

// The states of a stored outbound message.
const (
	Queued   MessageState = iota // not sent yet
	Inflight                     // PUBLISH sent, waiting for PUBACK or PUBREC
	Released                     // PUBREL sent, waiting for PUBCOMP
)

// String returns "queued", "inflight" or "released".
func (s MessageState) String() string {
	switch s {
	case Queued:
		return "queued"
	case Inflight:
		return "inflight"
	case Released:
		return "released"
	}
	return "MessageState(" + strconv.Itoa(int(s)) + ")"
}

// MessageRecord is an outbound message of a session, or a retained message.
//
// Pub's Dup and PacketID belong to the hop it arrived on, not to the message: the on-disk store
// does not keep them (they come back zero from Load; the memory store hands back the same
// Publish). The delivery's own packet id is PacketID below. A topic alias is not kept either.
type MessageRecord struct {
	Pub      *codec.Publish
	QoS      byte // the delivery QoS (min of publish and granted)
	Retain   bool // the delivery's retain flag
	SubIDs   []uint32
	Received time.Time // for message expiry
	PacketID uint16    // for Inflight and Released
	State    MessageState
}

// Batch is a list of mutations that a Store applies atomically, in order.
//
// A Batch may be reused (Reset) once Commit has returned, but the records it points to belong
// to the store from then on: the memory store keeps them as they are, so never change a record
// after it was put in a batch (make a new one, as with a Publish).
type Batch struct {
	ops []op
}

type opKind byte

const (
	opPutSession opKind = iota + 1
	opDeleteSession
	opPutMessage
	opDeleteMessage
	opPutInbound
	opDeleteInbound
	opPutRetained
	opDeleteRetained
)

type op struct {
	kind opKind
	key  string // client id, or topic for retained
	seq  uint64
	id   uint16
	sess *SessionRecord
	msg  *MessageRecord
}

// PutSession stores r, replacing the session of the same client id (its messages and inbound
// ids stay).
func (b *Batch) PutSession(r *SessionRecord) {
	b.ops = append(b.ops, op{kind: opPutSession, key: r.ClientID, sess: r})
}

// DeleteSession removes the session of clientID with every message and inbound id of it.
func (b *Batch) DeleteSession(clientID string) {
	b.ops = append(b.ops, op{kind: opDeleteSession, key: clientID})
}

// PutMessage stores r as message seq of clientID; seq orders a session's messages on Load.
// A put right after a put of the same message replaces it: a message taken and sent in one
// go is written once, in the state it ends up in.
func (b *Batch) PutMessage(clientID string, seq uint64, r *MessageRecord) {
	if n := len(b.ops); n > 0 {
		if last := &b.ops[n-1]; last.kind == opPutMessage && last.seq == seq && last.key == clientID {
			last.msg = r
			return
		}
	}
	b.ops = append(b.ops, op{kind: opPutMessage, key: clientID, seq: seq, msg: r})
}

// DeleteMessage removes message seq of clientID (acknowledged, expired or dropped).
func (b *Batch) DeleteMessage(clientID string, seq uint64) {
	b.ops = append(b.ops, op{kind: opDeleteMessage, key: clientID, seq: seq})
}

// PutInbound records an inbound QoS 2 packet id of clientID not yet released.
func (b *Batch) PutInbound(clientID string, packetID uint16) {
	b.ops = append(b.ops, op{kind: opPutInbound, key: clientID, id: packetID})
}

// DeleteInbound forgets an inbound QoS 2 packet id (PUBREL received).
func (b *Batch) DeleteInbound(clientID string, packetID uint16) {
	b.ops = append(b.ops, op{kind: opDeleteInbound, key: clientID, id: packetID})
}

// PutRetained stores r as the retained message of topic.
func (b *Batch) PutRetained(topic string, r *MessageRecord) {
	b.ops = append(b.ops, op{kind: opPutRetained, key: topic, msg: r})
}

// DeleteRetained removes the retained message of topic.
func (b *Batch) DeleteRetained(topic string) {
	b.ops = append(b.ops, op{kind: opDeleteRetained, key: topic})
}

// Append adds o's mutations to b, after b's own. o may be reset once Append has returned.
func (b *Batch) Append(o *Batch) { b.ops = append(b.ops, o.ops...) }

// Len returns the number of mutations in b.
func (b *Batch) Len() int { return len(b.ops) }

// Reset empties b for reuse, keeping its capacity.
func (b *Batch) Reset() {
	clear(b.ops) // drop the record pointers so that the store alone keeps them alive
	b.ops = b.ops[:0]
}

// Store is where the broker's durable state lives.
type Store interface {
	// Commit applies b; done (may be nil) is called exactly once, when b is durable according
	// to the sync mode, or with the error. Commit never waits for the disk: it queues. The
	// queue is bounded (QueueSize); when it is full, Commit blocks its caller until the
	// committer has taken a group off it, i.e. for about one write and fsync.
	Commit(b *Batch, done func(error))
	// Load visits everything stored, for the broker's start (before it accepts connections):
	// per client id, its session, then its messages in seq order, then its inbound ids; then
	// the retained messages. Records passed to the visitor must be treated as read-only. A
	// visitor function may be nil (a Visitor with only Retained set reads only the retained
	// messages); an error from one stops Load and is returned.
	//
	// Load and LoadClient see every commit queued before they were called, so an actor that
	// reloads its state after a failure reads its own last writes. They must not be called
	// from a commit callback.
	Load(v Visitor) error
	// LoadClient visits the session, messages and inbound ids of one client id, as Load does.
	LoadClient(clientID string, v Visitor) error
	// Stats reports the store's size and activity.
	Stats() Stats
	// Close waits for pending commits (their callbacks are called), then closes. Commits after
	// Close get ErrClosed.
	Close() error
}

// Visitor receives what Load finds.
type Visitor struct {
	Session  func(r *SessionRecord) error
	Message  func(clientID string, seq uint64, r *MessageRecord) error
	Inbound  func(clientID string, packetID uint16) error
	Retained func(topic string, r *MessageRecord) error
}

// Stats is a snapshot of a store's counters.
type Stats struct {
	Bytes      uint64 // on disk: WAL, tables, manifest (0 for memory)
	Keys       uint64 // live records (sessions, messages, inbound ids, retained)
	Commits    uint64 // batches committed (callbacks called without error)
	Writes     uint64 // writes to the engine; with sync on, one fsync each
	Errors     uint64 // batches that failed
	QueueDepth int    // commits waiting for the committer
}

// GroupCommit returns the mean number of batches per write (per fsync when syncing): the
// group commit factor.
func (s Stats) GroupCommit() float64 {
	if s.Writes == 0 {
		return 0
	}
	return float64(s.Commits) / float64(s.Writes)
}

// SyncMode says when a commit counts as durable.
type SyncMode string

// The sync modes of config's `sync`.
const (
	// SyncBatch is group commit: every batch waiting when the committer wakes is written as
	// one engine batch with one fsync.
	SyncBatch SyncMode = "batch"
	// SyncAlways writes and fsyncs each Commit on its own.
	SyncAlways SyncMode = "always"
	// SyncNone groups like SyncBatch but never fsyncs: the OS decides when data reaches the
	// disk, so a power loss (not a process crash) can lose acknowledged messages.
	SyncNone SyncMode = "none"
)

// Valid reports whether m is one of the sync modes.
func (m SyncMode) Valid() bool { return m == SyncBatch || m == SyncAlways || m == SyncNone }

// ErrClosed is given to the callbacks of commits made after Close.
var ErrClosed = errors.New("store: closed")

// QueueSize bounds the commits waiting for the committer of an on-disk store.
const QueueSize = 4096

// maxGroup bounds one group commit, so that the first batch of a long queue does not wait
// for an unbounded write.
const maxGroup = 1024
