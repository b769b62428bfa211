package actors

import (
	"os"
	"sync"
	"syscall"
)

// poller waits for idle plain-TCP sockets to become readable, so that an idle connection holds
// no goroutine: a connected reader that has seen nothing on its socket for parkGrace registers
// it here and its goroutine ends; when data (or the peer's close) arrives, the poller starts a
// new reader goroutine. One epoll instance serves every broker of the process. Registrations
// are one-shot: a socket wakes its reader once and is re-armed by the reader's next park.
//
// The epoll instance is itself registered with Go's netpoller (an epoll descriptor is readable
// when events are ready), so the poller's goroutine waits like any socket's: no thread of its
// own, and a wake-up costs no more thread hand-offs than an ordinary read. The sockets stay
// registered with Go's netpoller as well, which the reader goroutine uses while it runs.
type poller struct {
	epfd   int
	events []syscall.EpollEvent

	mu   sync.Mutex
	next uint64
	regs map[uint64]*reader // by registration id, carried in the epoll event
}

var (
	pollerOnce sync.Once
	thePoller  *poller
)

// getPoller returns the process's poller, started on first use; nil when epoll is not
// available, and then readers keep their goroutines.
func getPoller() *poller {
	pollerOnce.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		p := &poller{epfd: fd, events: make([]syscall.EpollEvent, 256), regs: make(map[uint64]*reader)}
		var raw syscall.RawConn
		if syscall.SetNonblock(fd, true) == nil {
			// A non-blocking descriptor given to os.NewFile is added to Go's netpoller.
			raw, _ = os.NewFile(uintptr(fd), "actormq-poller").SyscallConn()
		}
		thePoller = p
		go p.loop(raw)
	})
	return thePoller
}

func (p *poller) loop(raw syscall.RawConn) {
	if raw != nil {
		// harvest returns false when nothing is ready: Read then waits in Go's netpoller for
		// the epoll descriptor to become readable. It returns only if that is impossible.
		_ = raw.Read(p.harvest)
		_ = syscall.SetNonblock(p.epfd, false)
	}
	for { // fallback: a thread blocked in epoll_wait
		n, err := syscall.EpollWait(p.epfd, p.events, -1)
		if err != nil && err != syscall.EINTR && err != syscall.EAGAIN {
			panic("actors: epoll_wait: " + err.Error()) // a bug of ours: a bad epoll fd
		}
		p.dispatch(n)
	}
}

func (p *poller) harvest(fd uintptr) bool {
	for {
		n, err := syscall.EpollWait(int(fd), p.events, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false
		}
		p.dispatch(n)
	}
}

func (p *poller) dispatch(n int) {
	for i := 0; i < n; i++ {
		ev := &p.events[i]
		id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
		p.mu.Lock()
		r := p.regs[id]
		p.mu.Unlock()
		if r != nil {
			r.wake()
		}
	}
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// register gives r a registration id; its first arm adds the socket to the epoll set. The
// reader calls it while it still runs, so that everything register writes is in place before
// the reader parks; from then on the poller, the keep-alive timer and the socket's close may
// own the reader at any moment.
func (p *poller) register(r *reader) error {
	p.mu.Lock()
	p.next++
	id := p.next
	p.regs[id] = r
	p.mu.Unlock()
	r.pollID = id
	r.pollFirst = true
	return nil
}

// arm makes the next readiness of r's socket wake r: the first time by adding the socket to
// the epoll set, armed (one system call per connection less than adding, then arming). It
// fails when the socket is closed.
func (p *poller) arm(r *reader) error {
	op := syscall.EPOLL_CTL_MOD
	if r.pollFirst {
		// Cleared before the call: once armed, a wake-up may run the reader elsewhere.
		r.pollFirst = false
		op = syscall.EPOLL_CTL_ADD
	}
	return p.ctl(r, op, pollEvents)
}

func (p *poller) ctl(r *reader, op int, events uint32) error {
	c := ctlCalls.Get().(*ctlCall)
	c.epfd, c.op = p.epfd, op
	c.ev = syscall.EpollEvent{Events: events, Fd: int32(uint32(r.pollID)), Pad: int32(uint32(r.pollID >> 32))}
	// Control holds the descriptor open: it cannot be closed (and its number reused by another
	// socket) while epoll_ctl runs.
	err := r.raw.Control(c.fn)
	if err == nil {
		err = c.err
	}
	c.err = nil
	ctlCalls.Put(c)
	return err
}

// ctlCall is one epoll_ctl made through RawConn.Control. The calls are pooled with their
// function bound once: a closure per call, over the call's event and result, would escape to
// the heap (an idle reader arms its socket at every park).
type ctlCall struct {
	epfd, op int
	ev       syscall.EpollEvent
	err      error
	fn       func(fd uintptr)
}

var ctlCalls = sync.Pool{New: func() any {
	c := new(ctlCall)
	c.fn = c.run
	return c
}}

func (c *ctlCall) run(fd uintptr) { c.err = syscall.EpollCtl(c.epfd, c.op, int(fd), &c.ev) }

// forget removes r for good. The descriptor leaves the epoll set when it is closed, or now if
// it is still open.
func (p *poller) forget(r *reader) {
	if r.pollID == 0 {
		return
	}
	p.mu.Lock()
	delete(p.regs, r.pollID)
	p.mu.Unlock()
	_ = p.ctl(r, syscall.EPOLL_CTL_DEL, 0) // fails harmlessly if the first arm never added it
}
