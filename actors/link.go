package actors

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actormq/actormq/codec"
)

// Link is the goroutine-safe handle of one connection: the bounded queue toward its writer
// goroutine (the socket's only writer) and what the client negotiated. Router shards and
// sessions hold a Link so that they write to a subscriber without a hop through its connection
// actor.
//
// The queue is a slice under a mutex rather than a channel: a buffered channel allocates its
// whole capacity up front, which an idle connection must not pay for, and the writer takes
// everything queued in one swap and sends it with one write.
//
// The writer goroutine runs only while there is something to write: push starts it when it
// queues into an idle Link, and it exits once the queue is empty and written, returning its
// encode buffer to a pool. An idle connection costs no writer stack and no buffer. What must
// survive between bursts (the outbound topic aliases, the spare queue slice) lives in the Link.
type Link struct {
	conn  net.Conn
	stats *Stats

	// Set once by the connection actor when the CONNECT is accepted, before the Link is handed
	// to a session or shard (the actor messages that carry it order the write before any read).
	Version     codec.Version
	ClientID    string
	maxPacket   uint32 // the client's Maximum Packet Size; 0: no limit beyond the protocol's
	aliasMax    uint16 // the client's Topic Alias Maximum (outbound aliases)
	maxQueue    int
	writeTimout time.Duration
	// runWriter is l.run, made once: the method value would allocate at every burst.
	runWriter func()

	mu      sync.Mutex
	queue   []outItem
	closing bool          // a close item is queued or the writer has ended: refuse more
	running bool          // a writer goroutine owns the socket (or the Link is finished): start no other
	aborted bool          // Abort was called: the writer must end without writing more
	slow    string        // why the client was found to be a slow consumer, if it was
	over    bool          // the connection is finished (see Done)
	done    chan struct{} // made by the first Done: most connections never have a waiter
	cutoff  *time.Timer   // aborts a closing connection that does not finish in time (abortAfter)

	// backlog is set while the queue holds maxQueue items or more, or maxOwed SUBSCRIBE and
	// UNSUBSCRIBE packets wait for their answers: the reader reads nothing more from the client
	// until the writer has taken the queue and the session has answered (waitBacklog). A
	// client that does not keep up with its answers is held back by TCP instead of piling them
	// up here, and a flood of SUBSCRIBEs waits in the socket, not in the actors' mailboxes.
	backlog atomic.Bool
	owed    int           // SUBSCRIBE and UNSUBSCRIBE packets passed on and not answered yet
	drained chan struct{} // closed when the backlog ends; made by a waiting reader

	// writeSince is when the writer entered its current socket write (unix nanoseconds), 0
	// outside one: a write that lasts is a client not taking what it is sent.
	writeSince atomic.Int64

	abortOnce sync.Once

	// onClose, if set, is called once the socket is closed: a reader parked in the poller
	// learns of the close from it (reader.socketClosed). Set before the Link is shared.
	onClose func()

	// Writer state that outlives one writer goroutine (only the running writer touches it;
	// the mutex orders one writer's last use before the next one's first).
	aliases map[string]uint16 // outbound topic aliases the client knows

	// InboundUnacked counts QoS 1 and 2 publishes received from the client and not yet
	// answered with PUBACK or PUBCOMP: the client's use of our Receive Maximum.
	InboundUnacked atomic.Int32
	// Credits bound the publishes this connection has on their way to the router: the reader
	// puts one in before routing, the shard takes it out once routed. Made by the reader at
	// its first publish (credits), as a connection that only subscribes never needs it; a
	// shard reads it only from a route the reader sent, so after it was made.
	Credits      chan struct{}
	creditWindow int

	Dropped atomic.Uint64 // outbound messages dropped at this link (slow consumer, too large)

	// Per-client traffic for the console (directory.go).
	BytesIn, BytesOut       atomic.Uint64
	MessagesIn, MessagesOut atomic.Uint64
}

type itemKind uint8

const (
	itemPacket  itemKind = iota // a control packet, encoded as is
	itemPublish                 // a delivery of a shared, read-only publish
	itemAck                     // PUBACK/PUBREC/PUBREL/PUBCOMP built without allocating a packet
	itemClose                   // flush what is queued before it, then close the socket
)

// outItem is one entry of a Link's queue. Deliveries carry the shared publish and the fields
// that differ per subscriber, so fan-out never copies a publish until the writer encodes it.
type outItem struct {
	kind   itemKind
	pkt    codec.Packet
	pub    *codec.Publish
	qos    byte
	dup    bool
	retain bool
	id     uint16
	// Per-delivery MQTT 5.0 properties.
	subIDs    []uint32
	expiry    uint32
	hasExpiry bool
	ackType   codec.PacketType
	ackCode   codec.ReasonCode
}

// ErrLinkFull is returned when the writer is too far behind: the client is a slow consumer.
var ErrLinkFull = errors.New("writer queue full")

// errLinkClosed is returned once the connection is closing.
var errLinkClosed = errors.New("connection closing")

func newLink(conn net.Conn, stats *Stats, maxQueue, creditWindow int, writeTimeout time.Duration) *Link {
	l := &Link{
		conn:         newSocket(conn), // raw system calls on plain TCP (rawio_linux.go)
		stats:        stats,
		maxQueue:     maxQueue,
		writeTimout:  writeTimeout,
		creditWindow: creditWindow,
	}
	l.runWriter = l.run
	return l
}

// credits returns Credits, made at the first call. Only the reader calls it (and tests
// standing in for it).
func (l *Link) credits() chan struct{} {
	if l.Credits == nil {
		l.Credits = make(chan struct{}, l.creditWindow)
	}
	return l.Credits
}

// setClientLimits records what the client told us in CONNECT (5.0 properties).
func (l *Link) setClientLimits(maxPacket uint32, aliasMax uint16) {
	l.maxPacket = maxPacket
	l.aliasMax = aliasMax
}

// fits reports whether a packet of n bytes may be sent to this client [MQTT-3.1.2-24].
func (l *Link) fits(n int) bool {
	return l.maxPacket == 0 || n <= int(l.maxPacket)
}

// fitsDelivery reports whether a delivery, as the writer will encode it, fits the client's
// Maximum Packet Size. Checked by the session before it takes an inflight slot, so that a
// message the writer would have to drop never waits for an acknowledgement.
func (l *Link) fitsDelivery(it *outItem, scratch *codec.Publish) bool {
	if l.maxPacket == 0 {
		return true
	}
	p := scratch
	l.delivery(p, it)
	if l.Version == codec.V5 && l.aliasMax > 0 {
		p.Properties.SetTopicAlias(1) // the writer may add one: count it
	}
	ok := l.fits(codec.Size(p, l.Version))
	*p = codec.Publish{}
	return ok
}

func (l *Link) push(it outItem) error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return errLinkClosed
	}
	if n := len(l.queue); n >= l.maxQueue {
		if it.kind == itemPublish {
			l.mu.Unlock()
			return ErrLinkFull
		}
		// Acknowledgements and other control packets are never dropped: they get headroom
		// past the delivery limit. The reader stops at maxQueue (backlog), so what comes
		// after is the answers to packets already read: one per publish on its way to the
		// router (router.credit_window), and those to packets still in the actors' mailboxes,
		// which come in bursts. Past that headroom, a client whose socket has taken nothing for
		// a while is not reading its own acknowledgements: it is closed as a slow consumer.
		if n >= 2*l.maxQueue+l.creditWindow && l.stuck() {
			l.closing = true
			l.slow = "it does not read its acknowledgements: more than twice connections.writer_queue packets wait for it"
			l.mu.Unlock()
			l.stats.SlowConsumersClosed.Add(1)
			l.Abort()
			return errLinkClosed
		}
	}
	l.appendLocked(it)
	return nil
}

// appendLocked queues it, starts the writer if none runs, and unlocks l.mu.
func (l *Link) appendLocked(it outItem) {
	if l.queue == nil {
		l.queue = getItems() // idle Links hold no queue array
	}
	l.queue = append(l.queue, it)
	if it.kind == itemPacket && l.owed > 0 {
		switch it.pkt.(type) {
		case *codec.Suback, *codec.Unsuback:
			l.owed--
		}
	}
	l.updateBacklog()
	start := !l.running
	l.running = true
	l.mu.Unlock()
	if start {
		Workers.Go(l.runWriter)
	}
}

// Finish ends the connection: it queues its last packet (a failing CONNACK or a DISCONNECT;
// nil for none) and the close in one step, so nothing another actor queues afterwards (a
// shard's PUBACK, a session's delivery) can follow the DISCONNECT [MQTT-3.14.4-1]. Everything
// queued before it is written first. Idempotent.
func (l *Link) Finish(last codec.Packet) {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return
	}
	l.closing = true
	if last != nil {
		if l.queue == nil {
			l.queue = getItems()
		}
		l.queue = append(l.queue, outItem{kind: itemPacket, pkt: last})
	}
	l.appendLocked(outItem{kind: itemClose})
}

// pushSent queues a delivery its session counts as sent already (a stored QoS 2 PUBLISH that
// waited for its record): past the delivery limit too, since the session's in-flight window
// bounds how many there can be, and refused only when the connection is closing.
func (l *Link) pushSent(it outItem) error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return errLinkClosed
	}
	l.appendLocked(it)
	return nil
}

// Send queues a control packet.
func (l *Link) Send(p codec.Packet) error { return l.push(outItem{kind: itemPacket, pkt: p}) }

// sendAck queues PUBACK, PUBREC, PUBREL or PUBCOMP.
func (l *Link) sendAck(t codec.PacketType, id uint16, code codec.ReasonCode) error {
	return l.push(outItem{kind: itemAck, ackType: t, id: id, ackCode: code})
}

// CloseAfterFlush queues the end of the connection: everything queued before it is written,
// then the socket is closed. Idempotent.
func (l *Link) CloseAfterFlush() { l.Finish(nil) }

// Abort closes the socket now, dropping whatever is queued. Idempotent.
func (l *Link) Abort() {
	l.abortOnce.Do(func() {
		_ = l.conn.Close()
		if l.onClose != nil {
			l.onClose()
		}
		l.mu.Lock()
		l.aborted, l.closing = true, true
		l.updateBacklog() // a reader waiting for the backlog finds the socket closed
		idle := !l.running
		l.running = true // no writer starts from now on
		l.mu.Unlock()
		if idle {
			l.finished() // no writer to do it
		} // else the running writer sees aborted (or a failed write) and finishes
	})
}

// maxOwed bounds the SUBSCRIBE and UNSUBSCRIBE packets on their way through the actors: each
// may hold thousands of filters and cost the session and every router shard work.
const maxOwed = 64

// maxBacklogWait bounds one wait of the reader: an answer lost on the way (a session that
// failed on its SUBSCRIBE) must not stop the connection for good.
const maxBacklogWait = time.Second

// updateBacklog sets backlog from the queue and the answers owed, and lets a waiting reader go
// when it ends (or the connection is closing). Called with l.mu held.
func (l *Link) updateBacklog() {
	on := !l.closing && (len(l.queue) >= l.maxQueue || l.owed >= maxOwed)
	l.backlog.Store(on)
	if !on && l.drained != nil {
		close(l.drained)
		l.drained = nil
	}
}

// owe records a SUBSCRIBE or UNSUBSCRIBE the reader passes on: its SUBACK or UNSUBACK is owed.
func (l *Link) owe() {
	l.mu.Lock()
	l.owed++
	l.updateBacklog()
	l.mu.Unlock()
}

// waitBacklog holds the reader while the client's answers back up (backlog), for at most
// maxBacklogWait. It returns false if quit (the reader's ctl) is closed first. One atomic load
// when there is no backlog.
func (l *Link) waitBacklog(quit <-chan *readerStart) bool {
	if !l.backlog.Load() {
		return true
	}
	l.mu.Lock()
	if !l.backlog.Load() {
		l.mu.Unlock()
		return true
	}
	if l.drained == nil {
		l.drained = make(chan struct{})
	}
	ch := l.drained
	l.mu.Unlock()
	t := time.NewTimer(maxBacklogWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-quit:
		return false
	}
	return true
}

// Done is closed when the connection is finished: the close was written or the Link aborted,
// and the socket is closed. It does not wait for a writer that is not running.
func (l *Link) Done() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done == nil {
		l.done = make(chan struct{})
		if l.over {
			close(l.done)
		}
	}
	return l.done
}

// finished marks the connection finished and lets whoever waits on Done go.
func (l *Link) finished() {
	l.mu.Lock()
	if l.over {
		l.mu.Unlock()
		return
	}
	l.over = true
	if l.done != nil {
		close(l.done)
	}
	if l.cutoff != nil {
		l.cutoff.Stop()
	}
	l.mu.Unlock()
}

// abortAfter aborts the connection if it has not finished within d: a closing connection
// whose client takes nothing cannot keep its socket and queue for longer. A timer, not a
// goroutine waiting on Done: thousands of clients may go at once.
func (l *Link) abortAfter(d time.Duration) {
	l.mu.Lock()
	if !l.over && l.cutoff == nil {
		l.cutoff = time.AfterFunc(d, l.Abort)
	}
	l.mu.Unlock()
}

// writerScratch is what a writer goroutine needs while it runs and an idle Link should not
// keep: the encode buffer and the copy of the publish being encoded (a local copy would escape
// to the heap through codec's Packet interface, once per delivery). Pooled between bursts.
type writerScratch struct {
	buf []byte
	pub codec.Publish
}

var writeBufs = sync.Pool{New: func() any { return new(writerScratch) }}

// maxPooledBuf bounds the buffers kept in writeBufs: a burst of large packets should not pin
// their memory.
const maxPooledBuf = 64 << 10

// run is the writer goroutine, started by push. It ends when the queue is empty and written
// (the Link is idle; the next push starts a new writer) or when the connection is finished.
func (l *Link) run() {
	ws := writeBufs.Get().(*writerScratch)
	buf := ws.buf[:0]
	batch := getItems()
	for {
		l.mu.Lock()
		if !l.aborted && len(l.queue) == 0 {
			// Idle: give up the socket. The aliases stay with the Link; both halves of the
			// queue swap go back to the pool.
			l.running = false
			q := l.queue
			l.queue = nil
			l.mu.Unlock()
			putItems(q)
			putItems(batch)
			putWriteBuf(ws, buf)
			return
		}
		if l.aborted {
			l.mu.Unlock()
			break
		}
		batch, l.queue = l.queue, batch[:0]
		l.updateBacklog()
		l.mu.Unlock()

		ok := true
		closeNow := false
		for i := range batch {
			it := &batch[i]
			if it.kind == itemClose {
				closeNow = true
				break
			}
			buf = l.encode(buf, it, &l.aliases, &ws.pub)
			if len(buf) >= 64<<10 {
				if ok = l.write(buf); !ok {
					break
				}
				buf = buf[:0]
			}
		}
		clear(batch) // drop references to publishes already written
		ws.pub = codec.Publish{}
		if ok && len(buf) > 0 {
			ok = l.write(buf)
		}
		if cap(buf) > 256<<10 { // a burst of large packets should not pin their memory
			buf = nil
		} else {
			buf = buf[:0]
		}
		if !ok || closeNow {
			break
		}
	}
	// The connection is finished: closed after its last write, or the socket failed or was
	// aborted. Abort sees running set and leaves done to this goroutine.
	putWriteBuf(ws, buf)
	putItems(batch)
	l.Abort()
	l.finished()
}

// queueItems holds the queue slices of idle Links: a busy connection's queue grows to its
// bursts, and an idle one should not keep that array.
var queueItems sync.Pool // of *[]outItem, empty

// maxPooledItems bounds the slices kept in queueItems.
const maxPooledItems = 4096

// itemBoxes holds the emptied boxes of queueItems, so that putting a slice back does not
// allocate a box for it each time.
var itemBoxes sync.Pool // of *[]outItem, nil

func getItems() []outItem {
	if p, _ := queueItems.Get().(*[]outItem); p != nil {
		s := *p
		*p = nil
		itemBoxes.Put(p)
		return s
	}
	return nil
}

func putItems(s []outItem) {
	if cap(s) == 0 || cap(s) > maxPooledItems {
		return
	}
	p, _ := itemBoxes.Get().(*[]outItem)
	if p == nil {
		p = new([]outItem)
	}
	*p = s[:0]
	queueItems.Put(p)
}

func putWriteBuf(ws *writerScratch, buf []byte) {
	if cap(buf) > maxPooledBuf {
		buf = nil
	}
	ws.buf = buf[:0]
	ws.pub = codec.Publish{} // keep no publish alive from the pool
	writeBufs.Put(ws)
}

func (l *Link) write(b []byte) bool {
	if l.writeTimout > 0 {
		_ = l.conn.SetWriteDeadline(time.Now().Add(l.writeTimout))
	}
	l.writeSince.Store(time.Now().UnixNano())
	n, err := l.conn.Write(b)
	l.writeSince.Store(0)
	l.stats.BytesOut.Add(uint64(n))
	l.BytesOut.Add(uint64(n))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		l.mu.Lock()
		if l.slow == "" {
			l.slow = "it took no data for connections.write_timeout"
			l.stats.SlowConsumersClosed.Add(1)
		}
		l.mu.Unlock()
	}
	return err == nil
}

// stuck reports whether the writer has been inside one socket write for a second, or for the
// write timeout if that is shorter: a descheduled writer or a socket whose buffers are still
// growing does not last that long.
func (l *Link) stuck() bool {
	since := l.writeSince.Load()
	if since == 0 {
		return false
	}
	grace := time.Second
	if l.writeTimout > 0 {
		grace = min(grace, l.writeTimout)
	}
	return time.Since(time.Unix(0, since)) >= grace
}

// SlowConsumer says why the connection was closed as a slow consumer, "" if it was not.
func (l *Link) SlowConsumer() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.slow
}

// encode appends one queued item. Failures to encode are the broker's own bugs or a packet
// over the client's limit; the item is dropped and counted, the connection goes on. scratch is
// the writer's own Publish to build a delivery in (left holding references: the writer clears
// it when it goes idle).
func (l *Link) encode(buf []byte, it *outItem, aliases *map[string]uint16, scratch *codec.Publish) []byte {
	var err error
	switch it.kind {
	case itemPacket:
		buf, err = codec.Append(buf, it.pkt, l.Version)
	case itemAck:
		buf, err = codec.AppendAck(buf, it.ackType, it.id, it.ackCode, l.Version)
	case itemPublish:
		if k, ok := l.sharedKey(it); ok {
			if e := l.lookupShared(it, k, scratch); e != nil {
				if l.maxPacket != 0 && !l.fits(len(e.b)) {
					l.Dropped.Add(1)
					l.stats.DroppedTooLarge.Add(1)
					return buf
				}
				l.countOut(it.qos)
				return appendShared(buf, e, it)
			}
		}
		return l.appendFull(buf, it, aliases, scratch)
	}
	if err != nil {
		l.Dropped.Add(1)
	}
	return buf
}

// appendFull encodes a delivery from the shared publish and this subscriber's fields.
func (l *Link) appendFull(buf []byte, it *outItem, aliases *map[string]uint16, scratch *codec.Publish) []byte {
	p := scratch
	l.delivery(p, it)
	if l.Version == codec.V5 && l.aliasMax > 0 {
		l.setTopicAlias(p, aliases)
	}
	if l.maxPacket != 0 && !l.fits(codec.Size(p, l.Version)) {
		l.Dropped.Add(1)
		l.stats.DroppedTooLarge.Add(1)
		return buf
	}
	buf, err := codec.Append(buf, p, l.Version)
	if err != nil {
		l.Dropped.Add(1)
		return buf
	}
	l.countOut(p.QoS)
	return buf
}

// delivery makes p this subscriber's copy of the shared publish: its packet id, flags and, in
// 5.0, its subscription identifiers and remaining message expiry. The size check and the
// writer both start from it, so what is checked is what is sent.
func (l *Link) delivery(p *codec.Publish, it *outItem) {
	*p = *it.pub
	p.Dup, p.QoS, p.Retain, p.PacketID = it.dup, it.qos, it.retain, it.id
	if l.Version == codec.V5 {
		p.Properties.SetSubscriptionIdentifiers(it.subIDs)
		if it.hasExpiry {
			p.Properties.SetMessageExpiryInterval(it.expiry)
		}
	}
}

// setTopicAlias gives a 5.0 delivery an outbound topic alias, when the client allows them.
func (l *Link) setTopicAlias(p *codec.Publish, aliases *map[string]uint16) {
	if *aliases == nil {
		*aliases = make(map[string]uint16)
	}
	if a, ok := (*aliases)[p.Topic]; ok {
		// The client knows this alias: send it without the topic [MQTT-3.3.2-12].
		p.Properties.SetTopicAlias(a)
		p.Topic = ""
		return
	}
	if n := len(*aliases); n < int(l.aliasMax) {
		a := uint16(n + 1)
		(*aliases)[p.Topic] = a
		p.Properties.SetTopicAlias(a)
	}
}
