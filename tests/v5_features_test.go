package tests

// End-to-end tests of the MQTT 5.0 features: topic aliases, message expiry, subscription
// identifiers and options, shared subscriptions, flow control, packet size, properties, wills
// and the SUBACK/UNSUBACK reason codes. Helpers are in v5_test.go.

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
)

// ---- topic aliases ----

// A server accepts every Topic Alias from 1 to the Topic Alias Maximum of its CONNACK
// [MQTT-3.3.2-12]: a PUBLISH with a topic and an alias sets the mapping, one with an empty
// topic uses it, one with another topic changes it (§3.3.4). Subscribers get the full topic,
// and one that did not allow aliases never gets one [MQTT-3.1.2-27].
func TestV5TopicAliasInbound(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.MQTT.TopicAliasMaximum = 10 })
	sub, _ := v5Connect(t, b, "v5-alias-sub")
	sub.sub("v5/alias/#", 1)
	pub, ack := v5Connect(t, b, "v5-alias-pub")
	max, ok := ack.Properties.TopicAliasMaximum()
	if !ok || max != 10 {
		t.Fatalf("Topic Alias Maximum = %d (present %v), want 10", max, ok)
	}

	send := func(topic string, alias uint16, payload string) {
		t.Helper()
		p := &codec.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}
		p.Properties.SetTopicAlias(alias)
		if code := pub.publish(p); code != codec.Success {
			t.Fatalf("publish %q (topic %q alias %d): %s, want Success", payload, topic, alias, code)
		}
	}
	send("v5/alias/first/topic", 1, "a")
	send("", 1, "b")
	send("v5/alias/second/topic", 1, "c") // remap alias 1
	send("", 1, "d")
	send("v5/alias/max", max, "e") // the highest alias allowed
	send("", max, "f")

	want := [][2]string{
		{"v5/alias/first/topic", "a"}, {"v5/alias/first/topic", "b"},
		{"v5/alias/second/topic", "c"}, {"v5/alias/second/topic", "d"},
		{"v5/alias/max", "e"}, {"v5/alias/max", "f"},
	}
	for _, w := range want {
		p := sub.receiveMsg(w[0], w[1])
		if a, ok := p.Properties.TopicAlias(); ok {
			t.Errorf("delivery carries Topic Alias %d to a client that allows none [MQTT-3.1.2-27]", a)
		}
	}
	sub.quiet(v5Quiet)
}

// With the subscriber's Topic Alias Maximum in its CONNECT the broker may send aliases: never
// above that maximum [MQTT-3.1.2-26], and a repeated topic goes out as the alias with an
// empty topic name (§3.3.2.3.4). Every delivery resolves to the topic it was published on.
func TestV5TopicAliasOutbound(t *testing.T) {
	b := startBroker(t)
	sub, _ := v5Connect(t, b, "v5-oalias-sub", func(p *codec.Connect) { p.Properties.SetTopicAliasMaximum(2) })
	sub.sub("v5/oalias/#", 1)
	pub, _ := v5Connect(t, b, "v5-oalias-pub")

	topics := []string{"v5/oalias/one", "v5/oalias/one", "v5/oalias/two", "v5/oalias/three", "v5/oalias/one", "v5/oalias/three"}
	for i, topic := range topics {
		pub.pub(topic, 1, fmt.Sprint(i))
	}
	mapping := map[uint16]string{}
	var firstAlias uint16
	for i, topic := range topics {
		p := sub.receive()
		if string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: payload %q, want %q", i, p.Payload, fmt.Sprint(i))
		}
		a, hasAlias := p.Properties.TopicAlias()
		if hasAlias && (a == 0 || a > 2) {
			t.Fatalf("message %d: Topic Alias %d above the client's maximum 2 [MQTT-3.1.2-26]", i, a)
		}
		resolved := p.Topic
		switch {
		case p.Topic == "" && !hasAlias:
			t.Fatalf("message %d: empty topic without a Topic Alias", i)
		case p.Topic == "":
			var known bool
			if resolved, known = mapping[a]; !known {
				t.Fatalf("message %d: empty topic with Topic Alias %d that was never set", i, a)
			}
		case hasAlias:
			mapping[a] = p.Topic
		}
		if resolved != topic {
			t.Fatalf("message %d resolves to topic %q, want %q", i, resolved, topic)
		}
		switch i {
		case 0:
			if !hasAlias || p.Topic != topic {
				t.Fatalf("first message: topic %q alias %d (present %v), want the topic with an alias", p.Topic, a, hasAlias)
			}
			firstAlias = a
		case 1:
			if p.Topic != "" || !hasAlias || a != firstAlias {
				t.Fatalf("second message on the same topic: topic %q alias %d (present %v), want alias %d and an empty topic",
					p.Topic, a, hasAlias, firstAlias)
			}
		}
	}
	sub.quiet(v5Quiet)
}

// ---- message expiry ----

// A message whose Message Expiry Interval passes while it waits for an offline subscriber is
// deleted for that subscriber [MQTT-3.3.2-5]; one without expiry is still delivered. The
// deleted message must not hold back the ones behind it, even with Receive Maximum 1.
func TestV5MessageExpiryDropsQueuedMessage(t *testing.T) {
	for _, receiveMax := range []uint16{0, 1} {
		t.Run(fmt.Sprintf("receive-maximum-%d", receiveMax), func(t *testing.T) {
			b := startBroker(t)
			connect := func(mutate ...func(*codec.Connect)) (*v5Client, *codec.Connack) {
				mutate = append(mutate, v5Expiry(60), func(p *codec.Connect) {
					if receiveMax > 0 {
						p.Properties.SetReceiveMaximum(receiveMax)
					}
				})
				return v5Connect(t, b, "v5-exp-sub", mutate...)
			}
			sub, _ := connect()
			sub.sub("v5/exp/t", 1)
			sub.disconnect()

			pub, _ := v5Connect(t, b, "v5-exp-pub")
			short := &codec.Publish{Topic: "v5/exp/t", QoS: 1, Payload: []byte("expires")}
			short.Properties.SetMessageExpiryInterval(1)
			if code := pub.publish(short); code != codec.Success {
				t.Fatalf("PUBACK %s, want Success", code)
			}
			pub.pub("v5/exp/t", 1, "keeps")
			time.Sleep(2 * time.Second)

			sub2, ack := connect(v5Resume)
			if !ack.SessionPresent {
				t.Fatalf("Session Present 0 for a kept session")
			}
			sub2.receiveMsg("v5/exp/t", "keeps")
			sub2.quiet(v5Quiet)
			sub2.endSession()
		})
	}
}

// A message in flight whose Message Expiry Interval passes while its client is away is not
// sent again when the session resumes [MQTT-3.3.2-5], also when a message sent after it was
// completed already: each QoS has its own acknowledgement order [MQTT-4.6.0-2] [MQTT-4.6.0-3],
// so a QoS 1 message can be done while an earlier QoS 2 one still waits for its PUBREC. The
// others are sent again in order with DUP set [MQTT-4.4.0-1], and the session goes on.
func TestV5ExpiredInflightDroppedOnResume(t *testing.T) {
	b := startBroker(t)
	sub, _ := v5Connect(t, b, "v5-exp-inflight", v5Expiry(60))
	sub.subscribe(nil, codec.Subscription{Filter: "v5/expin/2", QoS: 2}, codec.Subscription{Filter: "v5/expin/1", QoS: 1})
	pub, _ := v5Connect(t, b, "v5-exp-inflight-pub")
	expiring := &codec.Publish{Topic: "v5/expin/2", QoS: 2, Payload: []byte("expires")}
	expiring.Properties.SetMessageExpiryInterval(1)
	pub.pub2(expiring)
	pub.pub("v5/expin/1", 1, "done")
	pub.pub("v5/expin/2", 2, "kept")
	if p := sub.expectPublish(); string(p.Payload) != "expires" {
		t.Fatalf("first delivery %q, want the expiring message", p.Payload)
	}
	sub.receiveMsg("v5/expin/1", "done") // acknowledged while the first waits for its PUBREC
	if p := sub.expectPublish(); string(p.Payload) != "kept" {
		t.Fatalf("third delivery %q, want \"kept\"", p.Payload)
	}
	sub.drop()
	time.Sleep(1500 * time.Millisecond) // past the first message's expiry

	sub2, ack := v5Connect(t, b, "v5-exp-inflight", v5Expiry(60), v5Resume)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 for a kept session")
	}
	again := sub2.expectPublish()
	if string(again.Payload) != "kept" || !again.Dup {
		t.Fatalf("resumed with %s, want \"kept\" again with DUP", v5Describe([]codec.Packet{again}))
	}
	sub2.ack(again)
	pub.pub("v5/expin/1", 1, "after")
	sub2.receiveMsg("v5/expin/1", "after")
	sub2.quiet(v5Quiet)
	sub2.endSession()
}

// A message delivered after waiting in the server carries the Message Expiry Interval it was
// published with minus the time it waited [MQTT-3.3.2-6]; a live delivery carries at most the
// original value.
func TestV5MessageExpiryRemainingInterval(t *testing.T) {
	b := startBroker(t)
	sub, _ := v5Connect(t, b, "v5-rem-sub", v5Expiry(60))
	sub.sub("v5/rem/t", 1)
	pub, _ := v5Connect(t, b, "v5-rem-pub")

	live := &codec.Publish{Topic: "v5/rem/t", QoS: 1, Payload: []byte("live")}
	live.Properties.SetMessageExpiryInterval(10)
	pub.publish(live)
	p := sub.receiveMsg("v5/rem/t", "live")
	if v, ok := p.Properties.MessageExpiryInterval(); !ok || v == 0 || v > 10 {
		t.Errorf("live delivery: Message Expiry Interval %d (present %v), want 1..10 [MQTT-3.3.2-6]", v, ok)
	}

	sub.disconnect()
	queued := &codec.Publish{Topic: "v5/rem/t", QoS: 1, Payload: []byte("queued")}
	queued.Properties.SetMessageExpiryInterval(10)
	pub.publish(queued)
	time.Sleep(1200 * time.Millisecond)

	sub2, _ := v5Connect(t, b, "v5-rem-sub", v5Resume, v5Expiry(60))
	p = sub2.receiveMsg("v5/rem/t", "queued")
	if v, ok := p.Properties.MessageExpiryInterval(); !ok || v == 0 || v > 9 {
		t.Errorf("delivery after 1.2 s in the server: Message Expiry Interval %d (present %v), want 1..9 [MQTT-3.3.2-6]", v, ok)
	}
	sub2.endSession()
}

// ---- subscription identifiers and options ----

// A delivery carries the Subscription Identifier of the subscription it matched
// [MQTT-3.3.4-3]; when overlapping subscriptions match, the single copy carries all their
// identifiers [MQTT-3.3.4-4]; a subscription without one adds none.
func TestV5SubscriptionIdentifiers(t *testing.T) {
	b := startBroker(t)
	sub, _ := v5Connect(t, b, "v5-sid-sub")
	withID := func(id uint32) func(*codec.Properties) {
		return func(p *codec.Properties) { p.SetSubscriptionIdentifier(id) }
	}
	sub.subscribe(withID(7), codec.Subscription{Filter: "v5/sid/a", QoS: 1})
	pub, _ := v5Connect(t, b, "v5-sid-pub")

	pub.pub("v5/sid/a", 1, "one")
	p := sub.receiveMsg("v5/sid/a", "one")
	if ids := p.Properties.SubscriptionIdentifiers(); !slices.Equal(ids, []uint32{7}) {
		t.Errorf("Subscription Identifiers %v, want [7] [MQTT-3.3.4-3]", ids)
	}

	sub.subscribe(withID(9), codec.Subscription{Filter: "v5/sid/+", QoS: 1})
	pub.pub("v5/sid/a", 1, "both")
	p = sub.receiveMsg("v5/sid/a", "both")
	ids := slices.Clone(p.Properties.SubscriptionIdentifiers())
	slices.Sort(ids)
	if !slices.Equal(ids, []uint32{7, 9}) {
		t.Errorf("Subscription Identifiers %v on the one copy, want 7 and 9 [MQTT-3.3.4-4]", ids)
	}
	sub.quiet(v5Quiet) // one copy only

	pub.pub("v5/sid/b", 1, "wild")
	p = sub.receiveMsg("v5/sid/b", "wild")
	if ids := p.Properties.SubscriptionIdentifiers(); !slices.Equal(ids, []uint32{9}) {
		t.Errorf("Subscription Identifiers %v, want [9]", ids)
	}

	sub.sub("v5/plain", 1)
	pub.pub("v5/plain", 1, "none")
	p = sub.receiveMsg("v5/plain", "none")
	if ids := p.Properties.SubscriptionIdentifiers(); len(ids) != 0 {
		t.Errorf("Subscription Identifiers %v for a subscription without one", ids)
	}
}

// With No Local, a client's own messages are not forwarded to it [MQTT-3.8.3-3]; other
// clients' are, and a subscription without No Local gets its own.
func TestV5NoLocal(t *testing.T) {
	b := startBroker(t)
	self, _ := v5Connect(t, b, "v5-nl-self")
	self.subscribe(nil, codec.Subscription{Filter: "v5/nl/t", QoS: 1, NoLocal: true})
	self.publish(&codec.Publish{Topic: "v5/nl/t", QoS: 1, Payload: []byte("mine")})
	self.quiet(v5Quiet)

	other, _ := v5Connect(t, b, "v5-nl-other")
	other.pub("v5/nl/t", 1, "theirs")
	self.receiveMsg("v5/nl/t", "theirs")

	echo, _ := v5Connect(t, b, "v5-nl-echo")
	echo.sub("v5/nl/echo", 1)
	echo.pub("v5/nl/echo", 1, "echo")
	echo.receiveMsg("v5/nl/echo", "echo")
}

// Retain As Published 1 keeps the RETAIN flag of a forwarded message [MQTT-3.3.1-13]; 0 clears
// it [MQTT-3.3.1-12]. Retained messages sent at subscribe time have RETAIN 1 either way.
func TestV5RetainAsPublished(t *testing.T) {
	b := startBroker(t)
	keep, _ := v5Connect(t, b, "v5-rap-keep")
	keep.subscribe(nil, codec.Subscription{Filter: "v5/rap/t", QoS: 1, RetainAsPublished: true})
	plain, _ := v5Connect(t, b, "v5-rap-clear")
	plain.subscribe(nil, codec.Subscription{Filter: "v5/rap/t", QoS: 1})

	pub, _ := v5Connect(t, b, "v5-rap-pub")
	if code := pub.publish(&codec.Publish{Topic: "v5/rap/t", QoS: 1, Retain: true, Payload: []byte("state")}); code != codec.Success {
		t.Fatalf("PUBACK %s", code)
	}
	if p := keep.receiveMsg("v5/rap/t", "state"); !p.Retain {
		t.Errorf("Retain As Published 1: RETAIN 0 on a message published with RETAIN 1 [MQTT-3.3.1-13]")
	}
	if p := plain.receiveMsg("v5/rap/t", "state"); p.Retain {
		t.Errorf("Retain As Published 0: RETAIN 1 on a forwarded message [MQTT-3.3.1-12]")
	}
	pub.pub("v5/rap/t", 1, "live")
	if p := keep.receiveMsg("v5/rap/t", "live"); p.Retain {
		t.Errorf("Retain As Published 1: RETAIN 1 on a message published with RETAIN 0 [MQTT-3.3.1-13]")
	}
	plain.receiveMsg("v5/rap/t", "live")

	late, _ := v5Connect(t, b, "v5-rap-late")
	late.subscribe(nil, codec.Subscription{Filter: "v5/rap/t", QoS: 1})
	if p := late.receiveMsg("v5/rap/t", "state"); !p.Retain {
		t.Errorf("retained message sent at subscribe time with RETAIN 0 (§3.3.1.3)")
	}
}

// Retain Handling 0 sends the retained messages at every subscribe [MQTT-3.3.1-9]
// [MQTT-3.8.4-4]; 1 only when the subscription is new [MQTT-3.3.1-10]; 2 never
// [MQTT-3.3.1-11].
func TestV5RetainHandling(t *testing.T) {
	b := startBroker(t)
	pub, _ := v5Connect(t, b, "v5-rh-pub")
	if code := pub.publish(&codec.Publish{Topic: "v5/rh/t", QoS: 1, Retain: true, Payload: []byte("retained")}); code != codec.NoMatchingSubscribers && code != codec.Success {
		t.Fatalf("PUBACK %s", code)
	}
	sub := func(t *testing.T, c *v5Client, rh byte) {
		t.Helper()
		ack := c.subscribe(nil, codec.Subscription{Filter: "v5/rh/#", QoS: 1, RetainHandling: rh})
		if ack.ReasonCodes[0] != codec.GrantedQoS1 {
			t.Fatalf("SUBACK %s", ack.ReasonCodes[0])
		}
	}

	t.Run("0", func(t *testing.T) {
		c, _ := v5Connect(t, b, "v5-rh0")
		sub(t, c, 0)
		if p := c.receiveMsg("v5/rh/t", "retained"); !p.Retain {
			t.Errorf("retained message with RETAIN 0")
		}
		sub(t, c, 0) // the same subscription again: sent again [MQTT-3.8.4-4]
		c.receiveMsg("v5/rh/t", "retained")
		c.quiet(v5Quiet)
	})
	t.Run("1", func(t *testing.T) {
		c, _ := v5Connect(t, b, "v5-rh1")
		sub(t, c, 1)
		c.receiveMsg("v5/rh/t", "retained")
		sub(t, c, 1) // exists already: not sent [MQTT-3.3.1-10]
		c.quiet(v5Quiet)
	})
	t.Run("2", func(t *testing.T) {
		c, _ := v5Connect(t, b, "v5-rh2")
		sub(t, c, 2)
		c.quiet(v5Quiet) // [MQTT-3.3.1-11]
		c.pub("v5/rh/t", 1, "live")
		c.receiveMsg("v5/rh/t", "live") // the subscription itself works
	})
}

// ---- shared subscriptions ----

// Each message matching a shared subscription goes to exactly one of its sessions (§4.8.2):
// of 100 messages the two members' counts add up to 100, both get some, and a non-shared
// subscriber to the same topic gets all 100.
func TestV5SharedSubscriptionDistributes(t *testing.T) {
	b := startBroker(t)
	m1 := v5Paho(t, b, "v5-share-1")
	m1.subscribe("$share/g/v5/share/t", 1)
	m2 := v5Paho(t, b, "v5-share-2")
	m2.subscribe("$share/g/v5/share/t", 1)
	plain := v5Paho(t, b, "v5-share-plain")
	plain.subscribe("v5/share/t", 1)

	pub := v5Paho(t, b, "v5-share-pub")
	for i := range 100 {
		pub.publish("v5/share/t", 1, fmt.Sprint(i))
	}
	waitFor(t, v5Timeout, "100 messages to the group and to the plain subscriber", func() bool {
		return len(m1.msgs)+len(m2.msgs) >= 100 && len(plain.msgs) >= 100
	})
	time.Sleep(v5Quiet) // no extra copies
	n1, n2 := len(m1.msgs), len(m2.msgs)
	if n1+n2 != 100 || n1 == 0 || n2 == 0 {
		t.Fatalf("members received %d and %d of 100 messages: want a total of 100, both > 0", n1, n2)
	}
	if n := len(plain.msgs); n != 100 {
		t.Fatalf("the non-shared subscriber received %d of 100", n)
	}
	seen := map[string]bool{}
	for range n1 {
		seen[string((<-m1.msgs).Payload)] = true
	}
	for range n2 {
		seen[string((<-m2.msgs).Payload)] = true
	}
	if len(seen) != 100 {
		t.Fatalf("the group received %d distinct messages of 100: some went to both members", len(seen))
	}
}

// A session that ends leaves the shared subscription (§4.8.2): the remaining member gets
// every message.
func TestV5SharedSubscriptionMemberLeaves(t *testing.T) {
	b := startBroker(t)
	m1, _ := v5Connect(t, b, "v5-leave-1")
	m1.sub("$share/g/v5/leave/t", 1)
	m2, _ := v5Connect(t, b, "v5-leave-2")
	m2.sub("$share/g/v5/leave/t", 1)
	pub, _ := v5Connect(t, b, "v5-leave-pub")

	m2.disconnect()
	waitFor(t, v5Timeout, "the leaving member's session to end", func() bool { return b.Stats().Sessions.Load() == 2 })
	for i := range 20 {
		pub.pub("v5/leave/t", 1, fmt.Sprint(i))
	}
	for i := range 20 {
		m1.receiveMsg("v5/leave/t", fmt.Sprint(i))
	}
	m1.quiet(v5Quiet)
}

// A shared subscription gets no retained messages when it is made (§3.8.4, §4.8.2); a
// non-shared one to the same topic does.
func TestV5SharedSubscriptionNoRetained(t *testing.T) {
	b := startBroker(t)
	pub, _ := v5Connect(t, b, "v5-shret-pub")
	pub.publish(&codec.Publish{Topic: "v5/shret/t", QoS: 1, Retain: true, Payload: []byte("retained")})

	shared, _ := v5Connect(t, b, "v5-shret-shared")
	shared.sub("$share/g/v5/shret/t", 1)
	shared.quiet(v5Quiet)

	plain, _ := v5Connect(t, b, "v5-shret-plain")
	plain.sub("v5/shret/t", 1)
	plain.receiveMsg("v5/shret/t", "retained")

	pub.pub("v5/shret/t", 1, "live")
	shared.receiveMsg("v5/shret/t", "live")
}

// ---- flow control and packet size ----

// The server sends a client no more unacknowledged QoS 1 and 2 PUBLISH packets than the
// client's Receive Maximum [MQTT-3.3.4-9]; each PUBACK lets one more go (§4.9), and other
// packets are not held back meanwhile [MQTT-3.3.4-10].
func TestV5ReceiveMaximumTowardClient(t *testing.T) {
	b := startBroker(t)
	sub, _ := v5Connect(t, b, "v5-rm-sub", func(p *codec.Connect) { p.Properties.SetReceiveMaximum(2) })
	sub.sub("v5/rm/t", 1)
	pub, _ := v5Connect(t, b, "v5-rm-pub")
	for i := range 5 {
		pub.pub("v5/rm/t", 1, fmt.Sprint(i))
	}

	var got []*codec.Publish
	got = append(got, sub.expectPublish(), sub.expectPublish())
	sub.quiet(v5Quiet) // a third would exceed Receive Maximum 2 [MQTT-3.3.4-9]

	sub.Send(&codec.Pingreq{}) // still answered [MQTT-3.3.4-10]
	v5Await(sub, "PINGRESP", func(*codec.Pingresp) bool { return true })

	for received := 2; received < 5; received++ {
		sub.ack(got[0])
		got = append(got[1:], sub.expectPublish()) // one PUBACK, one more [MQTT-3.3.4-9]
		sub.quiet(v5Quiet)
	}
	for _, p := range got {
		sub.ack(p)
	}
	sub.quiet(v5Quiet)
	for i, p := range got {
		if want := fmt.Sprint(3 + i); string(p.Payload) != want {
			t.Errorf("last messages out of order: %q, want %q", p.Payload, want)
		}
	}
}

// The server never sends a packet larger than the client's Maximum Packet Size
// [MQTT-3.1.2-24]: it discards it and behaves as if it had sent it [MQTT-3.1.2-25], so the
// small message after it is delivered — at QoS 1 too, where a discarded message must not
// take the client's only Receive Maximum slot.
func TestV5MaximumPacketSizeTowardClient(t *testing.T) {
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b := startBroker(t)
			sub, _ := v5Connect(t, b, "v5-mps-sub", func(p *codec.Connect) {
				p.Properties.SetMaximumPacketSize(100)
				p.Properties.SetReceiveMaximum(1)
			})
			sub.sub("v5/mps/t", qos)
			pub, _ := v5Connect(t, b, "v5-mps-pub")
			pub.pub("v5/mps/t", qos, strings.Repeat("x", 500))
			pub.pub("v5/mps/t", qos, "small")
			p := sub.receiveMsg("v5/mps/t", "small")
			if size := len(v5Encode(t, p)); size > 100 {
				t.Errorf("received a packet of %d bytes, Maximum Packet Size 100 [MQTT-3.1.2-24]", size)
			}
			sub.quiet(v5Quiet)
			pub.pub("v5/mps/t", qos, "after")
			sub.receiveMsg("v5/mps/t", "after")
		})
	}
}

// v5Encode re-encodes a packet, to measure it.
func v5Encode(t testing.TB, p codec.Packet) []byte {
	t.Helper()
	b, err := codec.Append(nil, p, codec.V5)
	if err != nil {
		t.Fatalf("encode %T: %v", p, err)
	}
	return b
}

// ---- properties ----

// The server forwards Payload Format Indicator [MQTT-3.3.2-4], Response Topic
// [MQTT-3.3.2-15], Correlation Data [MQTT-3.3.2-16], User Properties unaltered
// [MQTT-3.3.2-17] and in order [MQTT-3.3.2-18], and Content Type [MQTT-3.3.2-20].
func TestV5PublishPropertiesForwarded(t *testing.T) {
	b := startBroker(t)
	sub, _ := v5Connect(t, b, "v5-props-sub")
	sub.sub("v5/props/t", 1)
	pub, _ := v5Connect(t, b, "v5-props-pub")

	corr := []byte{0, 1, 2, 0xFE, 0xFF}
	user := []codec.UserProperty{{Key: "k", Value: "1"}, {Key: "a", Value: "x y"}, {Key: "k", Value: "2"}, {Key: "", Value: ""}}
	p := &codec.Publish{Topic: "v5/props/t", QoS: 1, Payload: []byte(`{"x":1}`)}
	p.Properties.SetPayloadFormatIndicator(1)
	p.Properties.SetContentType("application/json; charset=utf-8")
	p.Properties.SetResponseTopic("v5/props/reply")
	p.Properties.SetCorrelationData(corr)
	p.Properties.SetUserProperties(user)
	pub.pub2(p)

	got := sub.receiveMsg("v5/props/t", `{"x":1}`)
	if v, ok := got.Properties.PayloadFormatIndicator(); !ok || v != 1 {
		t.Errorf("Payload Format Indicator %d (present %v), want 1 [MQTT-3.3.2-4]", v, ok)
	}
	if v, ok := got.Properties.ContentType(); !ok || v != "application/json; charset=utf-8" {
		t.Errorf("Content Type %q (present %v) [MQTT-3.3.2-20]", v, ok)
	}
	if v, ok := got.Properties.ResponseTopic(); !ok || v != "v5/props/reply" {
		t.Errorf("Response Topic %q (present %v) [MQTT-3.3.2-15]", v, ok)
	}
	if v, ok := got.Properties.CorrelationData(); !ok || !bytes.Equal(v, corr) {
		t.Errorf("Correlation Data %v (present %v), want %v [MQTT-3.3.2-16]", v, ok, corr)
	}
	if v := got.Properties.UserProperties(); !slices.Equal(v, user) {
		t.Errorf("User Properties %v, want %v in this order [MQTT-3.3.2-17] [MQTT-3.3.2-18]", v, user)
	}
}

// pub2 publishes a prepared message that has subscribers.
func (c *v5Client) pub2(p *codec.Publish) {
	c.T.Helper()
	if code := c.publish(p); code != codec.Success {
		c.T.Fatalf("%s: publish to %q: %s, want Success", c.id, p.Topic, code)
	}
}

// ---- wills ----

// v5WillConnect connects id with a will on topic, delay seconds of Will Delay Interval and the
// given session expiry.
func v5WillConnect(t testing.TB, b *testBroker, id, topic string, delay, expiry uint32, mutate ...func(*codec.Connect)) *v5Client {
	t.Helper()
	will := func(p *codec.Connect) {
		p.Will = &codec.Will{Topic: topic, Payload: []byte("will of " + id), QoS: 1}
		if delay > 0 {
			p.Will.Properties.SetWillDelayInterval(delay)
		}
		p.Properties.SetSessionExpiryInterval(expiry)
	}
	c, _ := v5Connect(t, b, id, append([]func(*codec.Connect){will}, mutate...)...)
	return c
}

// A will with a Will Delay Interval is published once the delay has passed after the
// connection was lost, not before (§3.1.3.2.2) [MQTT-3.1.2-8].
func TestV5WillDelayPublishedAfterDelay(t *testing.T) {
	b := startBroker(t)
	watch, _ := v5Connect(t, b, "v5-wd-watch")
	watch.sub("v5/wd/will", 1)
	c := v5WillConnect(t, b, "v5-wd", "v5/wd/will", 1, 10)
	c.drop()
	lost := time.Now()
	watch.quiet(600 * time.Millisecond)
	watch.receiveMsg("v5/wd/will", "will of v5-wd")
	if d := time.Since(lost); d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("will published %v after the connection was lost, want after the 1 s delay", d)
	}
	// End the session the will belonged to.
	c2, _ := v5Connect(t, b, "v5-wd")
	c2.disconnect()
}

// If the client reconnects before the Will Delay Interval has passed, the will is not
// published [MQTT-3.1.3-9].
func TestV5WillNotPublishedOnReconnectWithinDelay(t *testing.T) {
	b := startBroker(t)
	watch, _ := v5Connect(t, b, "v5-wr-watch")
	watch.sub("v5/wr/will", 1)
	c := v5WillConnect(t, b, "v5-wr", "v5/wr/will", 2, 30)
	c.drop()
	lost := time.Now()
	time.Sleep(300 * time.Millisecond)
	c2, ack := v5Connect(t, b, "v5-wr", v5Resume, v5Expiry(30))
	if !ack.SessionPresent {
		t.Fatalf("Session Present 0 for a kept session")
	}
	watch.quiet(time.Until(lost.Add(2500 * time.Millisecond)))
	c2.endSession()
	watch.quiet(v5Quiet)
}

// DISCONNECT with Reason Code 0x04 Disconnect with Will Message publishes the will; 0x00
// Normal disconnection discards it [MQTT-3.14.4-3] [MQTT-3.1.2-10].
func TestV5DisconnectWithWill(t *testing.T) {
	b := startBroker(t)
	watch, _ := v5Connect(t, b, "v5-dw-watch")
	watch.sub("v5/dw/#", 1)

	c := v5WillConnect(t, b, "v5-dw-04", "v5/dw/04", 0, 0)
	c.disconnect(func(d *codec.Disconnect) { d.ReasonCode = codec.DisconnectWithWill })
	watch.receiveMsg("v5/dw/04", "will of v5-dw-04")

	c = v5WillConnect(t, b, "v5-dw-00", "v5/dw/00", 0, 0)
	c.disconnect()
	watch.quiet(v5Quiet) // [MQTT-3.14.4-3]
}

// ---- SUBACK and UNSUBACK reason codes ----

// UNSUBACK has one reason code per filter, in order [MQTT-3.11.3-1]: 0x00 Success for a
// subscription that existed, 0x11 No subscription existed for one that did not (§3.11.3);
// the deleted subscription gets no more messages [MQTT-3.10.4-1] [MQTT-3.10.4-2].
func TestV5UnsubscribeReasonCodes(t *testing.T) {
	b := startBroker(t)
	c, _ := v5Connect(t, b, "v5-unsub")
	c.sub("v5/unsub/a", 1)
	ack := c.unsubscribe("v5/unsub/a", "v5/unsub/never")
	if !slices.Equal(ack.ReasonCodes, []codec.ReasonCode{codec.Success, codec.NoSubscriptionExisted}) {
		t.Fatalf("UNSUBACK %v, want [Success, No subscription existed]", ack.ReasonCodes)
	}
	if code := c.publish(&codec.Publish{Topic: "v5/unsub/a", QoS: 1, Payload: []byte("x")}); code != codec.NoMatchingSubscribers {
		t.Errorf("PUBACK %s after unsubscribing, want No matching subscribers", code)
	}
	c.quiet(v5Quiet)
}

// A Topic Filter with '#' not last is invalid [MQTT-4.7.1-1]: it is never granted. The
// SUBACK's code for it is 0x8F Topic Filter invalid while the valid filter of the same
// SUBSCRIBE is granted [MQTT-3.8.4-5] [MQTT-3.8.4-7]; a server may instead treat the packet
// as malformed and close the connection with DISCONNECT 0x81, 0x82 or 0x8F (§4.13.1).
func TestV5SubackInvalidTopicFilter(t *testing.T) {
	b := startBroker(t)
	c, _ := v5Connect(t, b, "v5-badfilter")
	c.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{
		{Filter: "v5/good", QoS: 1}, {Filter: "a/#/b", QoS: 1},
	}})
	p, err := c.ReadErr(v5Timeout)
	if err != nil {
		t.Fatalf("no answer to SUBSCRIBE: %v", err)
	}
	switch p := p.(type) {
	case *codec.Suback:
		if !slices.Equal(p.ReasonCodes, []codec.ReasonCode{codec.GrantedQoS1, codec.TopicFilterInvalid}) {
			t.Fatalf("SUBACK %v, want [Granted QoS 1, Topic Filter invalid]", p.ReasonCodes)
		}
		c.pub("v5/good", 1, "ok")
		c.receiveMsg("v5/good", "ok")
	case *codec.Disconnect:
		if p.ReasonCode != codec.MalformedPacket && p.ReasonCode != codec.ProtocolError && p.ReasonCode != codec.TopicFilterInvalid {
			t.Fatalf("DISCONNECT %s, want 0x81, 0x82 or 0x8F", p.ReasonCode)
		}
		c.ExpectClosed(v5Timeout)
	default:
		t.Fatalf("answer %s to SUBSCRIBE", v5Describe([]codec.Packet{p}))
	}
}

// v5ExpectRefused asserts that a SUBSCRIBE of filter is refused with code: in the SUBACK
// (§3.9.3), or as the Protocol Error of §3.2.2.3.11/§3.2.2.3.13 with DISCONNECT code and a
// close. It returns whether the connection is still open.
func v5ExpectRefused(t *testing.T, c *v5Client, filter string, code codec.ReasonCode) bool {
	t.Helper()
	c.Send(&codec.Subscribe{PacketID: c.nextID(), Subscriptions: []codec.Subscription{{Filter: filter, QoS: 1}}})
	p, err := c.ReadErr(v5Timeout)
	if err != nil {
		t.Fatalf("no answer to SUBSCRIBE %q: %v", filter, err)
	}
	switch p := p.(type) {
	case *codec.Suback:
		if !slices.Equal(p.ReasonCodes, []codec.ReasonCode{code}) {
			t.Fatalf("SUBACK %v for %q, want [%s]", p.ReasonCodes, filter, code)
		}
		return true
	case *codec.Disconnect:
		if p.ReasonCode != code {
			t.Fatalf("DISCONNECT %s for %q, want %s", p.ReasonCode, filter, code)
		}
		c.ExpectClosed(v5Timeout)
		return false
	}
	t.Fatalf("answer %s to SUBSCRIBE %q", v5Describe([]codec.Packet{p}), filter)
	return false
}

// With shared subscriptions turned off, a $share filter is refused with 0x9E Shared
// Subscriptions not supported (§3.2.2.3.13, §3.9.3), and gets no messages.
func TestV5SubackSharedSubscriptionsDisabled(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.MQTT.SharedSubscriptions = false })
	c, _ := v5Connect(t, b, "v5-noshare")
	if v5ExpectRefused(t, c, "$share/g/v5/noshare/t", codec.SharedSubscriptionsNotSupported) {
		if code := c.publish(&codec.Publish{Topic: "v5/noshare/t", QoS: 1, Payload: []byte("x")}); code != codec.NoMatchingSubscribers {
			t.Errorf("PUBACK %s: the refused shared subscription matched", code)
		}
		c.quiet(v5Quiet)
	}
}

// With wildcard subscriptions turned off, a filter with a wildcard is refused with 0xA2
// Wildcard Subscriptions not supported (§3.2.2.3.11, §3.9.3); an exact filter still works.
func TestV5SubackWildcardsDisabled(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.MQTT.WildcardSubscriptions = false })
	c, _ := v5Connect(t, b, "v5-nowild")
	if v5ExpectRefused(t, c, "v5/+/t", codec.WildcardSubscriptionsNotSupported) {
		if code := c.publish(&codec.Publish{Topic: "v5/x/t", QoS: 1, Payload: []byte("x")}); code != codec.NoMatchingSubscribers {
			t.Errorf("PUBACK %s: the refused wildcard subscription matched", code)
		}
		c.sub("v5/exact", 1)
		c.pub("v5/exact", 1, "ok")
		c.receiveMsg("v5/exact", "ok")
	}
}

// Past limits.max_subscriptions_per_client a new filter is refused with 0x97 Quota exceeded
// (§3.9.3), each filter of the SUBSCRIBE on its own [MQTT-3.8.4-5]; replacing an existing
// subscription is not a new one [MQTT-3.8.4-3].
func TestV5SubackQuotaExceeded(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.Limits.MaxSubscriptionsPerClient = 2 })
	c, _ := v5Connect(t, b, "v5-quota")
	ack := c.subscribe(nil,
		codec.Subscription{Filter: "v5/quota/a", QoS: 1},
		codec.Subscription{Filter: "v5/quota/b", QoS: 1},
		codec.Subscription{Filter: "v5/quota/c", QoS: 1})
	if !slices.Equal(ack.ReasonCodes, []codec.ReasonCode{codec.GrantedQoS1, codec.GrantedQoS1, codec.QuotaExceeded}) {
		t.Fatalf("SUBACK %v, want [Granted QoS 1, Granted QoS 1, Quota exceeded]", ack.ReasonCodes)
	}
	if code := c.subscribe(nil, codec.Subscription{Filter: "v5/quota/a", QoS: 2}).ReasonCodes[0]; code != codec.GrantedQoS2 {
		t.Fatalf("re-subscribing an existing filter: %s, want Granted QoS 2", code)
	}
	if code := c.publish(&codec.Publish{Topic: "v5/quota/c", QoS: 1, Payload: []byte("x")}); code != codec.NoMatchingSubscribers {
		t.Errorf("PUBACK %s: the refused subscription matched", code)
	}
	c.quiet(v5Quiet)
}
