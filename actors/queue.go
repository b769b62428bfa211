package actors

// deliveryQueue is a session's bounded FIFO of messages waiting for the client's window. Its
// buffer grows on demand up to max and is released when the queue drains, so an idle session
// holds little: a buffer of up to keptQueueCap messages stays, so that a session that gets one
// message at a time does not allocate one for each.
type deliveryQueue struct {
	buf  []Deliver
	head int
	max  int
}

func (q *deliveryQueue) len() int { return len(q.buf) - q.head }

func (q *deliveryQueue) full() bool { return q.len() >= q.max }

// push appends d. When full, QoS 0 messages go first; then, by policy, the newest (d itself)
// or the oldest. It returns the message dropped to keep the limit, if one was.
func (q *deliveryQueue) push(d Deliver, dropNewest bool) (dropped Deliver, ok bool) {
	if q.full() {
		if dropped, ok = q.dropOneQoS0(); !ok {
			if d.QoS == 0 || dropNewest {
				return d, true
			}
			dropped = q.pop()
		}
		ok = true
	}
	if q.head > 32 && q.head >= len(q.buf)/2 {
		// Reuse the consumed front rather than growing forever behind a queue that never drains.
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, d)
	return dropped, ok
}

// pushFront puts back a message that could not be sent yet.
func (q *deliveryQueue) pushFront(d Deliver) {
	if q.head > 0 {
		q.head--
		q.buf[q.head] = d
		return
	}
	q.buf = append([]Deliver{d}, q.buf...)
}

func (q *deliveryQueue) pop() Deliver {
	d := q.buf[q.head]
	q.buf[q.head] = Deliver{}
	q.head++
	if q.head == len(q.buf) {
		q.drained()
	}
	return d
}

func (q *deliveryQueue) dropOneQoS0() (Deliver, bool) {
	for i := q.head; i < len(q.buf); i++ {
		if d := q.buf[i]; d.QoS == 0 {
			copy(q.buf[i:], q.buf[i+1:])
			q.buf[len(q.buf)-1] = Deliver{}
			q.buf = q.buf[:len(q.buf)-1]
			return d, true
		}
	}
	return Deliver{}, false
}

func (q *deliveryQueue) dropQoS0() {
	for {
		if _, ok := q.dropOneQoS0(); !ok {
			break
		}
	}
	if q.len() == 0 {
		q.clear()
	}
}

// remove takes out the messages drop says to.
func (q *deliveryQueue) remove(drop func(*Deliver) bool) {
	kept := q.buf[:q.head]
	for i := q.head; i < len(q.buf); i++ {
		if !drop(&q.buf[i]) {
			kept = append(kept, q.buf[i])
		}
	}
	clear(q.buf[len(kept):])
	q.buf = kept
	if q.len() == 0 {
		q.clear()
	}
}

func (q *deliveryQueue) clear() { q.buf, q.head = nil, 0 }

// keptQueueCap is the most messages the buffer of a drained queue keeps room for; a session's
// inflight order and its spare inflight entries are held to it too.
const keptQueueCap = 4

// drained resets an emptied queue, whose taken places are already cleared.
func (q *deliveryQueue) drained() {
	if cap(q.buf) > keptQueueCap {
		q.clear()
		return
	}
	q.buf, q.head = q.buf[:0], 0
}
