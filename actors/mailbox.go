package actors

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// mailbox is the unbounded mailbox of every actor here. It runs as protoactor's default one
// does (system messages first, a suspended mailbox runs only system messages, the
// dispatcher's throughput, a panic escalated to the supervisor, the middlewares told of each
// step), with two differences that matter on the publish path, where each actor wakes for
// about every message at moderate rates: it gives its dispatcher the same function each time
// it is scheduled (protoactor's makes a closure each time: an allocation per hop, three per
// QoS 1 message), and its queues keep nothing once empty: small arrays go back to a pool
// (protoactor's user queue starts at 10 slots and never shrinks, and its system queue
// allocates a node per message).
// And a user message is counted out of UserMessageCount once handed out, not before.
type mailbox struct {
	user, sys   msgQueue
	userN, sysN atomic.Int32
	running     atomic.Bool
	suspended   atomic.Bool
	invoker     actor.MessageInvoker
	dispatcher  actor.Dispatcher
	middlewares []actor.MailboxMiddleware
	process     func() // processMessages, bound once
}

func newMailbox(mw []actor.MailboxMiddleware) *mailbox {
	m := &mailbox{middlewares: mw}
	m.process = m.processMessages
	return m
}

// PostUserMessage queues msg. Unlike protoactor's mailbox it does not also deliver the
// messages of an actor.MessageBatch one by one: the broker sends none.
func (m *mailbox) PostUserMessage(msg any) { m.post(&m.user, &m.userN, msg) }

func (m *mailbox) PostSystemMessage(msg any) { m.post(&m.sys, &m.sysN, msg) }

// post queues msg on q, counts it in n and makes sure the mailbox runs.
func (m *mailbox) post(q *msgQueue, n *atomic.Int32, msg any) {
	for _, mw := range m.middlewares {
		mw.MessagePosted(msg)
	}
	q.push(msg)
	n.Add(1)
	m.schedule()
}

func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
}

func (m *mailbox) Start() {
	for _, mw := range m.middlewares {
		mw.MailboxStarted()
	}
}

// UserMessageCount is the user messages posted and not yet handed out.
func (m *mailbox) UserMessageCount() int { return int(m.userN.Load()) }

func (m *mailbox) schedule() {
	if m.running.CompareAndSwap(false, true) {
		m.dispatcher.Schedule(m.process)
	}
}

func (m *mailbox) processMessages() {
	for {
		m.run()
		m.running.Store(false)
		// A message posted after run found the queues empty, but before running was cleared,
		// scheduled nothing: look again.
		sys, user := m.sysN.Load(), m.userN.Load()
		if (sys > 0 || !m.suspended.Load() && user > 0) && m.running.CompareAndSwap(false, true) {
			continue
		}
		if user == 0 && !m.suspended.Load() {
			for _, mw := range m.middlewares {
				mw.MailboxEmpty()
			}
		}
		return
	}
}

func (m *mailbox) run() {
	var msg any
	handing := false // a user message is popped and not yet counted out
	defer func() {
		if r := recover(); r != nil {
			if handing {
				m.userN.Add(-1) // lost with its failure, as protoactor loses it
			}
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	throughput := m.dispatcher.Throughput()
	for i := 0; ; i++ {
		if i > throughput {
			i = 0
			runtime.Gosched()
		}
		if msg = m.sys.pop(); msg != nil {
			m.sysN.Add(-1)
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended.Store(true)
			case *actor.ResumeMailbox:
				m.suspended.Store(false)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			for _, mw := range m.middlewares {
				mw.MessageReceived(msg)
			}
			continue
		}
		if m.suspended.Load() {
			return // until a ResumeMailbox
		}
		if msg = m.user.pop(); msg == nil {
			return
		}
		handing = true
		m.invoker.InvokeUserMessage(msg)
		for _, mw := range m.middlewares {
			mw.MessageReceived(msg)
		}
		// Counted out only now (protoactor counts it out before it is handed out): the
		// guard of a stopped actor takes the mailbox for drained at a count of 0, and a
		// message kept by MessageReceived must be kept by then (leftover.go).
		m.userN.Add(-1)
		handing = false
	}
}

// msgQueue is a FIFO for many senders and one receiver: a ring that grows by doubling, and
// gives its array back when it empties, so that an idle actor holds none.
type msgQueue struct {
	mu   sync.Mutex
	buf  []any // len is a power of two, or 0
	head int
	n    int
}

func (q *msgQueue) push(msg any) {
	q.mu.Lock()
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = msg
	q.n++
	q.mu.Unlock()
}

// pop returns the oldest message, nil when there is none.
func (q *msgQueue) pop() any {
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return nil
	}
	msg := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	if q.n == 0 {
		putQueueArray(q.buf) // every slot is nil again
		q.buf, q.head = nil, 0
	}
	q.mu.Unlock()
	return msg
}

func (q *msgQueue) grow() {
	next := getQueueArray(max(4, 2*len(q.buf)))
	for i := range q.n {
		next[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
	}
	clear(q.buf)
	putQueueArray(q.buf)
	q.buf, q.head = next, 0
}

// queueArrays holds the arrays of emptied queues, of 4, 8 and 16 slots: an actor that wakes
// for about every message (a session, a shard at moderate rates) takes one and gives it back
// each time instead of allocating it, and an idle one (two per idle connection) keeps none.
// Larger arrays, of rare bursts, are left to the collector.
var queueArrays [3]sync.Pool

func getQueueArray(n int) []any {
	switch n {
	case 4:
		if a, _ := queueArrays[0].Get().(*[4]any); a != nil {
			return a[:]
		}
	case 8:
		if a, _ := queueArrays[1].Get().(*[8]any); a != nil {
			return a[:]
		}
	case 16:
		if a, _ := queueArrays[2].Get().(*[16]any); a != nil {
			return a[:]
		}
	}
	return make([]any, n)
}

// putQueueArray pools a, whose slots must all be nil.
func putQueueArray(a []any) {
	switch len(a) {
	case 4:
		queueArrays[0].Put((*[4]any)(a))
	case 8:
		queueArrays[1].Put((*[8]any)(a))
	case 16:
		queueArrays[2].Put((*[16]any)(a))
	}
}
