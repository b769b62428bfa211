package codec

import (
	"bufio"
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// TestPropertyAccessors sets every property through its setter and reads it
// back through its getter, then removes it again.
func TestPropertyAccessors(t *testing.T) {
	type check struct {
		id  PropertyID
		set func(p *Properties)
		get func(p *Properties) (any, bool)
		val any
	}
	checks := []check{
		{PropPayloadFormatIndicator, func(p *Properties) { p.SetPayloadFormatIndicator(1) }, func(p *Properties) (any, bool) { return p.PayloadFormatIndicator() }, byte(1)},
		{PropMessageExpiryInterval, func(p *Properties) { p.SetMessageExpiryInterval(7) }, func(p *Properties) (any, bool) { return p.MessageExpiryInterval() }, uint32(7)},
		{PropContentType, func(p *Properties) { p.SetContentType("ct") }, func(p *Properties) (any, bool) { return p.ContentType() }, "ct"},
		{PropResponseTopic, func(p *Properties) { p.SetResponseTopic("rt") }, func(p *Properties) (any, bool) { return p.ResponseTopic() }, "rt"},
		{PropCorrelationData, func(p *Properties) { p.SetCorrelationData([]byte{1}) }, func(p *Properties) (any, bool) { return p.CorrelationData() }, []byte{1}},
		{PropSubscriptionIdentifier, func(p *Properties) { p.SetSubscriptionIdentifier(9) }, func(p *Properties) (any, bool) { return p.SubscriptionIdentifier() }, uint32(9)},
		{PropSessionExpiryInterval, func(p *Properties) { p.SetSessionExpiryInterval(8) }, func(p *Properties) (any, bool) { return p.SessionExpiryInterval() }, uint32(8)},
		{PropAssignedClientIdentifier, func(p *Properties) { p.SetAssignedClientIdentifier("a") }, func(p *Properties) (any, bool) { return p.AssignedClientIdentifier() }, "a"},
		{PropServerKeepAlive, func(p *Properties) { p.SetServerKeepAlive(6) }, func(p *Properties) (any, bool) { return p.ServerKeepAlive() }, uint16(6)},
		{PropAuthenticationMethod, func(p *Properties) { p.SetAuthenticationMethod("m") }, func(p *Properties) (any, bool) { return p.AuthenticationMethod() }, "m"},
		{PropAuthenticationData, func(p *Properties) { p.SetAuthenticationData([]byte{2}) }, func(p *Properties) (any, bool) { return p.AuthenticationData() }, []byte{2}},
		{PropRequestProblemInformation, func(p *Properties) { p.SetRequestProblemInformation(true) }, func(p *Properties) (any, bool) { return p.RequestProblemInformation() }, true},
		{PropWillDelayInterval, func(p *Properties) { p.SetWillDelayInterval(5) }, func(p *Properties) (any, bool) { return p.WillDelayInterval() }, uint32(5)},
		{PropRequestResponseInformation, func(p *Properties) { p.SetRequestResponseInformation(true) }, func(p *Properties) (any, bool) { return p.RequestResponseInformation() }, true},
		{PropResponseInformation, func(p *Properties) { p.SetResponseInformation("ri") }, func(p *Properties) (any, bool) { return p.ResponseInformation() }, "ri"},
		{PropServerReference, func(p *Properties) { p.SetServerReference("sr") }, func(p *Properties) (any, bool) { return p.ServerReference() }, "sr"},
		{PropReasonString, func(p *Properties) { p.SetReasonString("rs") }, func(p *Properties) (any, bool) { return p.ReasonString() }, "rs"},
		{PropReceiveMaximum, func(p *Properties) { p.SetReceiveMaximum(4) }, func(p *Properties) (any, bool) { return p.ReceiveMaximum() }, uint16(4)},
		{PropTopicAliasMaximum, func(p *Properties) { p.SetTopicAliasMaximum(3) }, func(p *Properties) (any, bool) { return p.TopicAliasMaximum() }, uint16(3)},
		{PropTopicAlias, func(p *Properties) { p.SetTopicAlias(2) }, func(p *Properties) (any, bool) { return p.TopicAlias() }, uint16(2)},
		{PropMaximumQoS, func(p *Properties) { p.SetMaximumQoS(1) }, func(p *Properties) (any, bool) { return p.MaximumQoS() }, byte(1)},
		{PropRetainAvailable, func(p *Properties) { p.SetRetainAvailable(true) }, func(p *Properties) (any, bool) { return p.RetainAvailable() }, true},
		{PropUserProperty, func(p *Properties) { p.AddUserProperty("k", "v") }, func(p *Properties) (any, bool) { return p.UserProperties(), p.Has(PropUserProperty) }, []UserProperty{{"k", "v"}}},
		{PropMaximumPacketSize, func(p *Properties) { p.SetMaximumPacketSize(1) }, func(p *Properties) (any, bool) { return p.MaximumPacketSize() }, uint32(1)},
		{PropWildcardSubscriptionAvailable, func(p *Properties) { p.SetWildcardSubscriptionAvailable(true) }, func(p *Properties) (any, bool) { return p.WildcardSubscriptionAvailable() }, true},
		{PropSubscriptionIdentifierAvailable, func(p *Properties) { p.SetSubscriptionIdentifierAvailable(true) }, func(p *Properties) (any, bool) { return p.SubscriptionIdentifierAvailable() }, true},
		{PropSharedSubscriptionAvailable, func(p *Properties) { p.SetSharedSubscriptionAvailable(true) }, func(p *Properties) (any, bool) { return p.SharedSubscriptionAvailable() }, true},
	}
	if len(checks) != 27 {
		t.Fatalf("%d checks, want 27", len(checks))
	}
	for _, c := range checks {
		var p Properties
		if _, ok := c.get(&p); ok || p.Has(c.id) {
			t.Errorf("%s present in a zero Properties", c.id)
		}
		c.set(&p)
		got, ok := c.get(&p)
		if !ok || !p.Has(c.id) || !reflect.DeepEqual(got, c.val) {
			t.Errorf("%s: got %v, %v; want %v", c.id, got, ok, c.val)
		}
		if p.IsEmpty() {
			t.Errorf("%s: IsEmpty after set", c.id)
		}
		p.Remove(c.id)
		if !reflect.DeepEqual(p, Properties{}) {
			t.Errorf("%s: Remove left %#v", c.id, p)
		}
		if strings.HasPrefix(c.id.String(), "PropertyID(") {
			t.Errorf("%s: no spec name", c.id)
		}
	}
	if s := PropertyID(0x7F).String(); s != "PropertyID(0x7F)" {
		t.Errorf("unknown property String() = %q", s)
	}
}

// TestPropertyListsNotShared: a decoded packet is shared between many
// deliveries, so changing the lists of one copy must leave the others alone.
func TestPropertyListsNotShared(t *testing.T) {
	raw := pkt(0x30, str("t"), props(by(0x0B, 1, 0x26), str("k"), str("v")))
	p, _, err := Decode(raw, V5)
	if err != nil {
		t.Fatal(err)
	}
	orig := p.(*Publish)
	copy1 := *orig
	copy1.Properties.AddUserProperty("k2", "v2")
	copy1.Properties.SetSubscriptionIdentifiers([]uint32{5, 6})
	if got := orig.Properties.UserProperties(); !slices.Equal(got, []UserProperty{{"k", "v"}}) {
		t.Errorf("original user properties changed to %v", got)
	}
	if got := orig.Properties.SubscriptionIdentifiers(); !slices.Equal(got, []uint32{1}) {
		t.Errorf("original subscription identifiers changed to %v", got)
	}
	if got := copy1.Properties.UserProperties(); len(got) != 2 {
		t.Errorf("copy user properties %v", got)
	}

	// Even a caller-made slice with spare capacity is not appended into.
	backing := make([]UserProperty, 1, 4)
	backing[0] = UserProperty{"a", "1"}
	var a, b Properties
	a.SetUserProperties(backing)
	b = a
	a.AddUserProperty("x", "x")
	b.AddUserProperty("y", "y")
	if a.UserProperties()[1].Key != "x" || b.UserProperties()[1].Key != "y" {
		t.Errorf("copies share appended user properties: %v %v", a.UserProperties(), b.UserProperties())
	}

	// Empty lists remove the property.
	a.SetUserProperties(nil)
	a.SetSubscriptionIdentifiers(nil)
	if a.Has(PropUserProperty) || a.Has(PropSubscriptionIdentifier) {
		t.Error("empty lists left the properties present")
	}
}

// TestDecodedSlicesCapped: an append to a decoded field cannot overwrite
// the bytes after it in the shared body.
func TestDecodedSlicesCapped(t *testing.T) {
	raw := pkt(0x10, str("MQTT"), by(5, 0xC6), u16b(0),
		props(by(0x15), str("m"), by(0x16), str("ad")), str("c"),
		props(by(0x09), str("cd")), str("w"), str("wp"), str("u"), str("pw"))
	p, _, err := Decode(raw, V5)
	if err != nil {
		t.Fatal(err)
	}
	c := p.(*Connect)
	ad, _ := c.Properties.AuthenticationData()
	cd, _ := c.Will.Properties.CorrelationData()
	for name, b := range map[string][]byte{"auth data": ad, "correlation data": cd, "will payload": c.Will.Payload, "password": c.Password} {
		if cap(b) != len(b) {
			t.Errorf("%s: cap %d > len %d", name, cap(b), len(b))
		}
	}
}

// TestVariableLengthPropertiesCopiedOnWrite: the strings, bytes and user
// properties live out of line and are shared by copies of a Properties, so a
// setter on one copy must leave every other copy as it was.
func TestVariableLengthPropertiesCopiedOnWrite(t *testing.T) {
	raw := pkt(0x30, str("t"), props(by(0x03), str("text/plain"), by(0x08), str("reply"), by(0x26), str("k"), str("v")))
	p, _, err := Decode(raw, V5)
	if err != nil {
		t.Fatal(err)
	}
	orig := p.(*Publish)
	cp := *orig
	cp.Properties.SetContentType("application/json")
	cp.Properties.Remove(PropResponseTopic)
	cp.Properties.SetCorrelationData([]byte("c"))
	cp.Properties.SetUserProperties([]UserProperty{{"a", "b"}})
	if ct, _ := orig.Properties.ContentType(); ct != "text/plain" {
		t.Errorf("original content type changed to %q", ct)
	}
	if rt, ok := orig.Properties.ResponseTopic(); !ok || rt != "reply" {
		t.Errorf("original response topic is %q, %v", rt, ok)
	}
	if _, ok := orig.Properties.CorrelationData(); ok {
		t.Error("original got the copy's correlation data")
	}
	if got := orig.Properties.UserProperties(); !slices.Equal(got, []UserProperty{{"k", "v"}}) {
		t.Errorf("original user properties changed to %v", got)
	}
	if ct, _ := cp.Properties.ContentType(); ct != "application/json" {
		t.Errorf("copy content type %q", ct)
	}
}

// TestDecodedPublishIsSmall holds down what decoding a PUBLISH allocates:
// its body and the packet, whose properties keep the rarely present
// variable-length ones out of line. At 5,000 messages/s every byte here is
// garbage collected work (docs/BENCHMARKS.md, "the tail at 5,000/s").
func TestDecodedPublishIsSmall(t *testing.T) {
	if size := unsafe.Sizeof(Publish{}); size > 128 {
		t.Errorf("a Publish is %d bytes, want at most 128", size)
	}
	raw := pkt(0x32, str("sensors/1/temp"), u16b(7), bytes.Repeat([]byte{'x'}, 64))
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	r := NewReader(br, 0)
	r.SetVersion(V311)
	read := func() {
		src.Reset(raw)
		br.Reset(src)
		if _, err := r.ReadPacket(); err != nil {
			t.Fatal(err)
		}
	}
	if perRead := bytesPerCall(read); perRead > 256 {
		t.Errorf("decoding a 64-byte QoS 1 PUBLISH allocated %d bytes, want at most 256", perRead)
	}
}
