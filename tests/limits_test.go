package tests

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
)

// Every limit from config, pushed past over real sockets: the broker answers as MQTT says,
// and the clients within the limit are unaffected.

func TestLimitMaxConnections(t *testing.T) {
	b := startBroker(t, func(c *config.Config) {
		c.Limits.MaxConnections = 3
	})
	var held []*rawClient
	for i := range 3 {
		rc := dialRaw(t, b.TCP311, codec.V311)
		if ack := rc.Connect(fmt.Sprintf("held-%d", i)); ack.ReasonCode != codec.Success {
			t.Fatalf("connection %d within the limit refused: %v", i, ack.ReasonCode)
		}
		held = append(held, rc)
	}
	// The fourth socket is closed at once, before it can send anything.
	extra := dialRaw(t, b.TCP311, codec.V311)
	extra.ExpectClosed(2 * time.Second)
	if n := b.Stats().Connections.Load(); n != 3 {
		t.Errorf("connection actors = %d, want 3", n)
	}
	// Those within the limit still work, and a freed slot is usable again.
	held[0].Send(&codec.Pingreq{})
	if _, ok := held[0].Read().(*codec.Pingresp); !ok {
		t.Fatal("a client within the limit got no PINGRESP")
	}
	held[1].Send(&codec.Disconnect{})
	held[1].ExpectClosed(2 * time.Second)
	// The slot is free once the socket is closed, which the writer does after the actor has
	// gone: poll with real connects.
	waitFor(t, 2*time.Second, "a connection in the freed slot", func() bool {
		_, ok := connectsNow(t, b.TCP311, "again")
		return ok
	})
}

func TestLimitMaxSessions(t *testing.T) {
	b := startBroker(t, func(c *config.Config) {
		c.Limits.MaxConnections = 2
		c.Limits.MaxSessions = 2
	})
	// Two persistent sessions outlive their connections and fill the registry.
	for i := range 2 {
		rc := dialRaw(t, b.TCP311, codec.V311)
		rc.Connect(fmt.Sprintf("persistent-%d", i), func(c *codec.Connect) { c.CleanStart = false })
		rc.Send(&codec.Disconnect{})
		rc.ExpectClosed(2 * time.Second)
	}
	waitFor(t, 2*time.Second, "two stored sessions", func() bool { return b.Stats().Sessions.Load() == 2 })

	// 5.0: CONNACK 0x97 Quota exceeded; 3.1.1: 0x03 Server unavailable [MQTT-3.2.2-6].
	v5 := dialRaw(t, b.TCP5, codec.V5)
	if ack := v5.Connect("third-v5"); ack.ReasonCode != codec.QuotaExceeded {
		t.Errorf("5.0 CONNACK = %v, want Quota exceeded", ack.ReasonCode)
	}
	v5.ExpectClosed(2 * time.Second)
	v3 := dialRaw(t, b.TCP311, codec.V311)
	if ack := v3.Connect("third-v3"); ack.ReasonCode != codec.ConnRefusedServerUnavailable {
		t.Errorf("3.1.1 CONNACK = %v, want Server unavailable", ack.ReasonCode)
	}
	v3.ExpectClosed(2 * time.Second)

	// An existing session is still reachable, and cleaning it up frees a place.
	rc := dialRaw(t, b.TCP311, codec.V311)
	if ack := rc.Connect("persistent-0"); ack.ReasonCode != codec.Success {
		t.Fatalf("existing session refused: %v", ack.ReasonCode)
	}
	rc.Send(&codec.Disconnect{})
	rc.ExpectClosed(2 * time.Second)
	waitFor(t, 2*time.Second, "the clean session to end", func() bool { return b.Stats().Sessions.Load() == 1 })
	rc = dialRaw(t, b.TCP311, codec.V311)
	if ack := rc.Connect("fourth"); ack.ReasonCode != codec.Success {
		t.Fatalf("connect after a session ended refused: %v", ack.ReasonCode)
	}
	rc.Send(&codec.Disconnect{})
	rc.ExpectClosed(2 * time.Second)
	endSessions(t, b, "persistent-1")
}

// endSessions connects with clean session to each id and disconnects, so that the leak check
// sees no session left.
func endSessions(t *testing.T, b *testBroker, ids ...string) {
	t.Helper()
	for _, id := range ids {
		rc := dialRaw(t, b.TCP311, codec.V311)
		rc.Connect(id)
		rc.Send(&codec.Disconnect{})
		rc.ExpectClosed(2 * time.Second)
	}
	waitFor(t, 2*time.Second, "sessions to end", func() bool { return b.Stats().Sessions.Load() == 0 })
}

func TestLimitRetainedMessages(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.Retained.MaxMessages = 3 })
	pub := dialRaw(t, b.TCP311, codec.V311)
	pub.Connect("publisher")
	for i := range 5 {
		pub.Send(&codec.Publish{QoS: 1, PacketID: uint16(i + 1), Retain: true, Topic: fmt.Sprintf("r/%d", i), Payload: []byte("x")})
		if _, ok := pub.Read().(*codec.Puback); !ok {
			t.Fatal("no PUBACK")
		}
	}
	if n := b.Stats().Retained.Load(); n != 3 {
		t.Fatalf("retained = %d, want the limit 3", n)
	}
	// Replacing a stored topic still works at the limit.
	pub.Send(&codec.Publish{QoS: 1, PacketID: 9, Retain: true, Topic: "r/0", Payload: []byte("new")})
	pub.Read()

	sub := dialRaw(t, b.TCP311, codec.V311)
	sub.Connect("subscriber")
	v3Subscribe(sub, 1, "r/#", 0)
	got := map[string]string{}
	for range 3 {
		p := v3ReadPublish(sub)
		got[p.Topic] = string(p.Payload)
	}
	v3ExpectSilence(sub, 200*time.Millisecond)
	if got["r/0"] != "new" || len(got) != 3 {
		t.Errorf("retained delivered = %v, want r/0=new and two more", got)
	}
}

func TestLimitTopicLevelsAndLength(t *testing.T) {
	b := startBroker(t, func(c *config.Config) {
		c.Limits.MaxTopicLevels = 3
		c.Limits.MaxTopicLength = 16
	})
	c := dialRaw(t, b.TCP5, codec.V5)
	c.Connect("limits")
	// 5.0: a topic name the server does not accept → PUBACK 0x90; filter → SUBACK 0x8F.
	c.Send(&codec.Publish{QoS: 1, PacketID: 1, Topic: "a/b/c/d", Payload: []byte("x")})
	if ack, ok := c.Read().(*codec.Puback); !ok || ack.ReasonCode != codec.TopicNameInvalid {
		t.Errorf("publish with 4 levels: %+v, want PUBACK Topic Name invalid", ack)
	}
	c.Send(&codec.Publish{QoS: 1, PacketID: 2, Topic: "abcdefghijklmnopq", Payload: []byte("x")})
	if ack, ok := c.Read().(*codec.Puback); !ok || ack.ReasonCode != codec.TopicNameInvalid {
		t.Errorf("publish with 17 bytes: %+v, want PUBACK Topic Name invalid", ack)
	}
	c.Send(&codec.Subscribe{PacketID: 3, Subscriptions: []codec.Subscription{{Filter: "a/b/c/#"}, {Filter: "a/b/#"}}})
	ack, ok := c.Read().(*codec.Suback)
	if !ok || len(ack.ReasonCodes) != 2 || ack.ReasonCodes[0] != codec.TopicFilterInvalid || ack.ReasonCodes[1] != codec.GrantedQoS0 {
		t.Errorf("SUBACK = %+v, want [Topic Filter invalid, Granted QoS 0]", ack)
	}
	// 3.1.1 cannot say why: the connection is closed.
	v3 := dialRaw(t, b.TCP311, codec.V311)
	v3.Connect("limits-v3")
	v3.Send(&codec.Publish{Topic: "a/b/c/d", Payload: []byte("x")})
	v3.ExpectClosed(2 * time.Second)
}

// TestLimitSlowConsumer: a subscriber that stops reading its socket neither stalls the
// publisher nor a healthy subscriber. Its QoS 0 messages fill its writer queue, then its
// session queue, past which they are dropped and counted; the write timeout then closes it.
// The healthy QoS 1 subscriber gets every message in order: when it falls behind, its
// publisher is slowed down (credits), not its messages dropped.
func TestLimitSlowConsumer(t *testing.T) {
	b := startBroker(t, func(c *config.Config) {
		c.Connections.WriterQueue = 256
		c.Sessions.MaxQueuedMessages = 100
		c.Connections.WriteTimeout = config.Duration(300 * time.Millisecond)
	})
	slow := dialRaw(t, b.TCP311, codec.V311)
	if tc, ok := slow.Conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // small socket buffers fill quickly
	}
	slow.Connect("slow")
	v3Subscribe(slow, 1, "flood/#", 0)
	healthy := dialRaw(t, b.TCP311, codec.V311)
	healthy.Connect("healthy")
	v3Subscribe(healthy, 1, "flood/#", 1)

	pub := dialRaw(t, b.TCP311, codec.V311)
	pub.Connect("publisher")
	const n = 3000
	payload := make([]byte, 2048)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; {
			p, err := healthy.ReadErr(10 * time.Second)
			if err != nil {
				done <- fmt.Errorf("after %d messages: %w", i, err)
				return
			}
			m, ok := p.(*codec.Publish)
			if !ok {
				continue
			}
			if got := int(m.Payload[0])<<8 | int(m.Payload[1]); got != i {
				done <- fmt.Errorf("message %d arrived as number %d", got, i)
				return
			}
			i++
			if err := healthyAck(healthy, m.PacketID); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	acks := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if _, err := pub.ReadErr(10 * time.Second); err != nil {
				acks <- fmt.Errorf("PUBACK %d: %w", i, err)
				return
			}
		}
		acks <- nil
	}()
	for i := range n {
		payload[0], payload[1] = byte(i>>8), byte(i)
		buf, _ := codec.Append(nil, &codec.Publish{QoS: 1, PacketID: uint16(i%60000 + 1), Topic: "flood/all", Payload: payload}, codec.V311)
		if _, err := pub.Conn.Write(buf); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("healthy subscriber: %v", err)
	}
	if err := <-acks; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the write timeout to close the slow consumer", func() bool {
		return b.Stats().Connections.Load() == 2
	})
	if b.Stats().DroppedQueue.Load() == 0 {
		t.Error("the slow consumer's overflow was not counted")
	}
}

func healthyAck(c *rawClient, id uint16) error {
	b, _ := codec.Append(nil, &codec.Puback{PacketID: id}, codec.V311)
	_, err := c.Conn.Write(b)
	return err
}

// TestLoadSmoke is the bounded load test CI runs: 20 publishers, QoS 1, one wildcard
// subscriber; every message arrives once and in order per publisher.
func TestLoadSmoke(t *testing.T) {
	b := startBroker(t)
	const pubs, each = 20, 250
	sub := dialRaw(t, b.TCP5, codec.V5)
	sub.Connect("sink", func(c *codec.Connect) { c.Properties.SetReceiveMaximum(1000) })
	sub.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "load/#", QoS: 1}}})
	sub.Read()

	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := publishNumbered(t, b.TCP311, fmt.Sprintf("load/%d", p), each, each); err != nil {
				errs <- fmt.Errorf("publisher %d: %w", p, err)
			}
		}()
	}
	next := make([]int, pubs)
	for got := 0; got < pubs*each; got++ {
		m, seq := readNumbered(t, sub, got)
		var who int
		fmt.Sscanf(m.Topic, "load/%d", &who)
		if seq != next[who] {
			t.Fatalf("publisher %d: got message %d, want %d (order per topic [MQTT-4.6.0-6])", who, seq, next[who])
		}
		next[who]++
		sub.Send(&codec.Puback{PacketID: m.PacketID})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLimitCreditWindowPacesPublisher: a subscriber that acknowledges nothing fills its window
// (mqtt.max_inflight) and queue (sessions.max_queued_messages); the next QoS 1 messages are
// parked holding their publisher's credits, and once router.credit_window credits are held the
// broker stops reading the publisher. Nothing is dropped: when the subscriber catches up,
// every message arrives in order and every PUBACK follows.
func TestLimitCreditWindowPacesPublisher(t *testing.T) {
	const window, inflight, queued, n = 2, 2, 2, 30
	b := startBroker(t, func(c *config.Config) {
		c.Router.CreditWindow = window
		c.MQTT.MaxInflight = inflight
		c.Sessions.MaxQueuedMessages = queued
	})
	sub := dialRaw(t, b.TCP311, codec.V311)
	sub.Connect("stalled-sub")
	v3Subscribe(sub, 1, "c/#", 1)
	pub := dialRaw(t, b.TCP311, codec.V311)
	pub.Connect("paced-pub")
	var all []byte
	for i := range n {
		all, _ = codec.Append(all, &codec.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "c/x", Payload: []byte{byte(i)}}, codec.V311)
	}
	pub.SendBytes(all)

	acks := 0
	for {
		if _, err := pub.ReadErr(500 * time.Millisecond); err != nil {
			break // no more PUBACKs: the publisher is paced
		}
		acks++
	}
	if max := inflight + queued + window; acks > max {
		t.Fatalf("%d PUBACKs while the subscriber acknowledged nothing; at most %d (window + queue + credits)", acks, max)
	}

	for i := range n {
		m := v3ReadPublish(sub)
		if int(m.Payload[0]) != i {
			t.Fatalf("message %d arrived as number %d", m.Payload[0], i)
		}
		sub.Send(&codec.Puback{PacketID: m.PacketID})
	}
	for acks < n {
		if _, err := pub.ReadErr(5 * time.Second); err != nil {
			t.Fatalf("after %d PUBACKs: %v", acks, err)
		}
		acks++
	}
	if d := b.Stats().DroppedQueue.Load(); d != 0 {
		t.Errorf("%d messages dropped; pacing should have kept them all", d)
	}
}

// TestLimitPacketIDsRunOut: with max_inflight at the protocol's 65,535, a subscriber that
// acknowledges nothing holds every packet id, each different: the broker assigns a currently
// unused one to each new QoS 1 PUBLISH [MQTT-2.3.1-2] [MQTT-2.3.1-4]. The next messages wait
// and go out, in order, under the ids as they are acknowledged, the only ones free
// [MQTT-2.3.1-3].
func TestLimitPacketIDsRunOut(t *testing.T) {
	if testing.Short() {
		t.Skip("delivers 65,537 messages")
	}
	b := startBroker(t, func(c *config.Config) {
		c.MQTT.MaxInflight = 0xFFFF
		c.Connections.WriterQueue = 0x10000 // room for a resumed session's inflight messages, as config asks
		c.Store.Persistence = false
	})
	sub := dialRaw(t, b.TCP311, codec.V311)
	sub.Connect("every-id")
	sub.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "ids", QoS: 1}}})
	if _, ok := sub.Read().(*codec.Suback); !ok {
		t.Fatal("no SUBACK")
	}

	const total, chunk = 0xFFFF + 2, 512
	published := make(chan error, 1)
	go func() { published <- publishNumbered(t, b.TCP311, "ids", total, chunk) }()

	next := 0 // the number the next PUBLISH carries: one publisher, so in order [MQTT-4.6.0-6]
	read := func() *codec.Publish {
		t.Helper()
		m, seq := readNumbered(t, sub, next)
		if seq != next {
			t.Fatalf("got message %d, want %d", seq, next)
		}
		next++
		return m
	}
	var held [0x10000]bool
	for range 0xFFFF {
		m := read()
		if m.PacketID == 0 || held[m.PacketID] {
			t.Fatalf("message %d went out under packet id %d, which is zero or in use [MQTT-2.3.1-4]", next-1, m.PacketID)
		}
		held[m.PacketID] = true
	}
	if p, err := sub.ReadErr(300 * time.Millisecond); err == nil {
		t.Fatalf("got %T with every packet id in flight", p)
	}
	for _, id := range []uint16{40000, 7} {
		sub.Send(&codec.Puback{PacketID: id})
		if m := read(); m.PacketID != id {
			t.Fatalf("message %d went out under id %d; the only one free is %d", next-1, m.PacketID, id)
		}
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
}

// readNumbered reads the next PUBLISH from c, one of publishNumbered's, and returns it with its
// number; got is how many came before it, for the failure message.
func readNumbered(t *testing.T, c *rawClient, got int) (*codec.Publish, int) {
	t.Helper()
	p, err := c.ReadErr(10 * time.Second)
	if err != nil {
		t.Fatalf("after %d messages: %v", got, err)
	}
	m, ok := p.(*codec.Publish)
	if !ok {
		t.Fatalf("got %T, want PUBLISH", p)
	}
	return m, int(binary.BigEndian.Uint32(m.Payload))
}

// publishNumbered publishes total QoS 1 messages to topic from a 3.1.1 client, each payload the
// message's number (4 bytes, big endian), written chunk at a time, each chunk acknowledged
// before the next goes. It runs off the test's goroutine, so it returns its error.
func publishNumbered(t *testing.T, addr, topic string, total, chunk int) error {
	c, err := brokertest.TryDial(t, addr, codec.V311)
	if err != nil {
		return err
	}
	connect, _ := codec.Append(nil, &codec.Connect{ProtocolName: "MQTT", Version: codec.V311, CleanStart: true, KeepAlive: 30, ClientID: "numbered-" + topic}, codec.V311)
	if _, err := c.Conn.Write(connect); err != nil {
		return err
	}
	if p, err := c.ReadErr(5 * time.Second); err != nil {
		return err
	} else if _, ok := p.(*codec.Connack); !ok {
		return fmt.Errorf("publisher: got %T, want CONNACK", p)
	}
	var buf []byte
	for sent := 0; sent < total; {
		n := min(chunk, total-sent)
		buf = buf[:0]
		for i := range n {
			payload := binary.BigEndian.AppendUint32(nil, uint32(sent+i))
			buf, _ = codec.Append(buf, &codec.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: topic, Payload: payload}, codec.V311)
		}
		if _, err := c.Conn.Write(buf); err != nil {
			return fmt.Errorf("publisher: %w", err)
		}
		for range n {
			if _, err := c.ReadErr(10 * time.Second); err != nil {
				return fmt.Errorf("publisher, after %d acknowledged: %w", sent, err)
			}
			sent++
		}
	}
	return nil
}
