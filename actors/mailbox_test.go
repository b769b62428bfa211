package actors

import (
	"slices"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// recordInvoker keeps what a mailbox hands it; a user message "panic" panics.
type recordInvoker struct {
	user, sys []any
	failed    []any
}

func (r *recordInvoker) InvokeSystemMessage(m any) { r.sys = append(r.sys, m) }
func (r *recordInvoker) InvokeUserMessage(m any) {
	if m == "panic" {
		panic("boom")
	}
	r.user = append(r.user, m)
}
func (r *recordInvoker) EscalateFailure(_ any, m any) { r.failed = append(r.failed, m) }

// heldDispatcher runs what is scheduled only when told, so that a test sees what is queued.
type heldDispatcher struct{ pending []func() }

func (d *heldDispatcher) Schedule(fn func()) { d.pending = append(d.pending, fn) }
func (d *heldDispatcher) Throughput() int    { return 300 }
func (d *heldDispatcher) runAll() {
	for len(d.pending) > 0 {
		fn := d.pending[0]
		d.pending = d.pending[1:]
		fn()
	}
}

// The mailbox hands out user messages in the order posted, across its queue's growth, and
// system messages before them; a suspended mailbox runs only system messages until resumed.
func TestMailboxOrderAndSuspension(t *testing.T) {
	inv, disp := &recordInvoker{}, &heldDispatcher{}
	m := newMailbox(nil)
	m.RegisterHandlers(inv, disp)
	m.Start()
	for i := range 100 {
		m.PostUserMessage(i)
	}
	m.PostSystemMessage(&actor.Started{})
	if len(disp.pending) != 1 {
		t.Fatalf("%d schedules for one idle mailbox, want 1", len(disp.pending))
	}
	disp.runAll()
	if len(inv.sys) != 1 || len(inv.user) != 100 {
		t.Fatalf("ran %d system and %d user messages, want 1 and 100", len(inv.sys), len(inv.user))
	}
	for i, m := range inv.user {
		if m != i {
			t.Fatalf("user message %d is %v: out of order", i, m)
		}
	}
	if m.user.buf != nil {
		t.Errorf("an emptied mailbox keeps an array of %d after a burst", len(m.user.buf))
	}
	if m.sys.buf != nil {
		t.Errorf("an emptied system queue keeps an array of %d", len(m.sys.buf))
	}
	// Nor after a single message: an idle connection's two actors would hold one each.
	m.PostUserMessage("one")
	disp.runAll()
	if m.user.buf != nil {
		t.Errorf("a mailbox emptied of one message keeps an array of %d", len(m.user.buf))
	}

	inv.user = nil
	m.PostSystemMessage(&actor.SuspendMailbox{})
	m.PostUserMessage("held")
	disp.runAll()
	if len(inv.user) != 0 || m.UserMessageCount() != 1 {
		t.Fatalf("a suspended mailbox ran %v", inv.user)
	}
	m.PostSystemMessage(&actor.ResumeMailbox{})
	disp.runAll()
	if !slices.Equal(inv.user, []any{"held"}) {
		t.Fatalf("after resuming ran %v, want [held]", inv.user)
	}
}

// A panic in the actor is escalated with the message that caused it, and the messages after
// it are still handed out; the lost one is counted out (a count left behind would have the
// mailbox look for it for ever).
func TestMailboxEscalatesAPanic(t *testing.T) {
	inv, disp := &recordInvoker{}, &heldDispatcher{}
	m := newMailbox(nil)
	m.RegisterHandlers(inv, disp)
	m.PostUserMessage("panic")
	m.PostUserMessage("after")
	disp.runAll()
	if !slices.Equal(inv.failed, []any{"panic"}) {
		t.Fatalf("escalated %v, want [panic]", inv.failed)
	}
	if n := m.UserMessageCount(); n != 0 {
		t.Fatalf("%d user messages counted after the failed one and the next were handed out", n)
	}
	disp.runAll()
	if !slices.Equal(inv.user, []any{"after"}) {
		t.Fatalf("after the failure ran %v, want [after]", inv.user)
	}
}

// A message through an idle mailbox allocates nothing: the actors on the publish path wake for
// about every message.
func TestMailboxAllocatesNothingPerMessage(t *testing.T) {
	inv := &recordInvoker{}
	m := newMailbox(nil)
	m.RegisterHandlers(inv, actor.NewSynchronizedDispatcher(300))
	msg := any(&clientAck{})
	allocs := testing.AllocsPerRun(100, func() {
		inv.user = inv.user[:0]
		m.PostUserMessage(msg)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per message, want 0", allocs)
	}
}
