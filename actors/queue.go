package actors

// deliveryQueue is a session's bounded FIFO of messages waiting for the client's window. Its
// buffer grows on demand up to max and is released when the queue drains, so an idle session
// holds none.
type deliveryQueue struct {
	buf  []Deliver
	head int
	max  int
}

func (q *deliveryQueue) len() int { return len(q.buf) - q.head }

// push appends d. When full, QoS 0 messages go first; then, by policy, the newest (d itself)
// or the oldest. It reports whether a message was dropped to keep the limit.
func (q *deliveryQueue) push(d Deliver, dropNewest bool) (dropped bool) {
	if q.len() >= q.max {
		if !q.dropOneQoS0() {
			if d.QoS == 0 || dropNewest {
				return true
			}
			q.pop()
		}
		dropped = true
	}
	if q.head > 32 && q.head >= len(q.buf)/2 {
		// Reuse the consumed front rather than growing forever behind a queue that never drains.
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, d)
	return dropped
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
		q.clear()
	}
	return d
}

func (q *deliveryQueue) dropOneQoS0() bool {
	for i := q.head; i < len(q.buf); i++ {
		if q.buf[i].QoS == 0 {
			copy(q.buf[i:], q.buf[i+1:])
			q.buf[len(q.buf)-1] = Deliver{}
			q.buf = q.buf[:len(q.buf)-1]
			return true
		}
	}
	return false
}

func (q *deliveryQueue) dropQoS0() {
	for q.dropOneQoS0() {
	}
	if q.len() == 0 {
		q.clear()
	}
}

func (q *deliveryQueue) clear() { q.buf, q.head = nil, 0 }
