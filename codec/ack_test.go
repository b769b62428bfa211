package codec

import (
	"bufio"
	"bytes"
	"testing"
)

// AppendAck writes the bytes Append writes for the same acknowledgement without properties:
// in 5.0 a Success is 2 bytes and another reason code 3 [MQTT-3.4.2-1]; PUBREL's fixed header
// flags are 0010 [MQTT-3.6.1-1]. It builds no packet on the heap.
func TestAppendAckIsAppend(t *testing.T) {
	acks := map[PacketType]func(id uint16, code ReasonCode) Packet{
		TypePuback:  func(id uint16, c ReasonCode) Packet { return &Puback{PacketID: id, ReasonCode: c} },
		TypePubrec:  func(id uint16, c ReasonCode) Packet { return &Pubrec{PacketID: id, ReasonCode: c} },
		TypePubrel:  func(id uint16, c ReasonCode) Packet { return &Pubrel{PacketID: id, ReasonCode: c} },
		TypePubcomp: func(id uint16, c ReasonCode) Packet { return &Pubcomp{PacketID: id, ReasonCode: c} },
	}
	for typ, mk := range acks {
		for _, v := range []Version{V31, V311, V5} {
			for _, code := range []ReasonCode{Success, NoMatchingSubscribers, UnspecifiedError, PacketIdentifierNotFound} {
				want, wantErr := Append(nil, mk(513, code), v)
				got, gotErr := AppendAck(nil, typ, 513, code, v)
				if (wantErr == nil) != (gotErr == nil) || !bytes.Equal(got, want) {
					t.Errorf("%s v%d code 0x%02X: AppendAck % X (%v), Append % X (%v)", typ, v, byte(code), got, gotErr, want, wantErr)
				}
			}
		}
	}
	if _, err := AppendAck(nil, TypePuback, 0, Success, V311); err == nil {
		t.Error("packet id 0 accepted")
	}
	if _, err := AppendAck(nil, TypePublish, 1, Success, V311); err == nil {
		t.Error("a PUBLISH encoded as an acknowledgement")
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf, _ = AppendAck(buf[:0], TypePuback, 7, Success, V5) }); n != 0 {
		t.Errorf("AppendAck allocates %.0f times", n)
	}
}

// With ReuseAcks every acknowledgement is decoded into the Reader's one packet, with the same
// fields as without; other packets are decoded as before.
func TestReuseAcks(t *testing.T) {
	var stream []byte
	for i, p := range []Packet{
		&Puback{PacketID: 1},
		&Pubrec{PacketID: 2, ReasonCode: NoMatchingSubscribers},
		&Publish{Topic: "a/b", QoS: 1, PacketID: 3, Payload: []byte("x")},
		&Pubrel{PacketID: 4},
		&Pubcomp{PacketID: 5, ReasonCode: PacketIdentifierNotFound},
	} {
		b, err := Append(nil, p, V5)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		stream = append(stream, b...)
	}
	r := NewReader(bufio.NewReader(bytes.NewReader(stream)), 0)
	r.SetVersion(V5)
	r.ReuseAcks()
	want := []struct {
		typ  PacketType
		id   uint16
		code ReasonCode
	}{{TypePuback, 1, Success}, {TypePubrec, 2, NoMatchingSubscribers}, {TypePublish, 3, 0}, {TypePubrel, 4, Success}, {TypePubcomp, 5, PacketIdentifierNotFound}}
	var first *Puback
	for i, w := range want {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p.Type() != w.typ {
			t.Fatalf("packet %d is %s, want %s", i, p.Type(), w.typ)
		}
		a := AckOf(p)
		if a == nil {
			continue
		}
		if a.PacketID != w.id || a.ReasonCode != w.code {
			t.Errorf("packet %d: id %d code 0x%02X, want %d 0x%02X", i, a.PacketID, byte(a.ReasonCode), w.id, byte(w.code))
		}
		if first == nil {
			first = a
		} else if a != first {
			t.Errorf("packet %d: decoded into a packet of its own", i)
		}
	}
}
