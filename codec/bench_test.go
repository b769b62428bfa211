package codec

import (
	"bufio"
	"bytes"
	"testing"
)

type benchCase struct {
	name string
	v    Version
	p    Packet
}

func benchCases() []benchCase {
	small := bytes.Repeat([]byte{'x'}, 64)
	large := bytes.Repeat([]byte{'x'}, 16<<10)
	pub := func(qos byte, payload []byte, v Version) *Publish {
		p := &Publish{QoS: qos, Topic: "devices/0042/sensors/temperature", Payload: payload}
		if qos > 0 {
			p.PacketID = 4242
		}
		if v == V5 {
			p.Properties.SetMessageExpiryInterval(300)
		}
		return p
	}
	connect := func(v Version) *Connect {
		c := &Connect{CleanStart: true, KeepAlive: 60, ClientID: "client-0042",
			Will:     &Will{Topic: "devices/0042/status", Payload: []byte("offline"), QoS: 1, Retain: true},
			Username: "device-0042", HasUsername: true, Password: []byte("s3cr3t-t0k3n"), HasPassword: true}
		if v == V5 {
			c.Properties.SetSessionExpiryInterval(3600)
			c.Properties.SetReceiveMaximum(100)
			c.Properties.SetTopicAliasMaximum(16)
			c.Will.Properties.SetWillDelayInterval(10)
		}
		return c
	}
	subscribe := func(v Version) *Subscribe {
		s := &Subscribe{PacketID: 7, Subscriptions: []Subscription{
			{Filter: "devices/+/sensors/#", QoS: 1},
			{Filter: "alerts/critical", QoS: 2},
			{Filter: "$share/workers/jobs/+", QoS: 1},
		}}
		if v == V5 {
			s.Properties.SetSubscriptionIdentifier(12)
		}
		return s
	}
	var cases []benchCase
	for _, v := range []Version{V311, V5} {
		cases = append(cases,
			benchCase{"CONNECT/" + v.String(), v, connect(v)},
			benchCase{"PUBLISH-QoS0-64B/" + v.String(), v, pub(0, small, v)},
			benchCase{"PUBLISH-QoS1-64B/" + v.String(), v, pub(1, small, v)},
			benchCase{"PUBLISH-QoS0-16KiB/" + v.String(), v, pub(0, large, v)},
			benchCase{"PUBLISH-QoS1-16KiB/" + v.String(), v, pub(1, large, v)},
			benchCase{"SUBSCRIBE/" + v.String(), v, subscribe(v)},
			benchCase{"PUBACK/" + v.String(), v, &Puback{PacketID: 4242}},
		)
	}
	return cases
}

func BenchmarkEncode(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, Size(c.p, c.v))
			b.SetBytes(int64(cap(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Append(buf[:0], c.p, c.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode decodes from a byte slice: parsing alone, the body is not
// copied.
func BenchmarkDecode(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			raw, err := Append(nil, c.p, c.v)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Decode(raw, c.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadPacket is the broker's path: a Reader over a buffered stream,
// each packet read into its own body.
func BenchmarkReadPacket(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			raw, err := Append(nil, c.p, c.v)
			if err != nil {
				b.Fatal(err)
			}
			r := NewReader(bufio.NewReaderSize(&repeatReader{data: raw}, 64<<10), 0)
			r.SetVersion(c.v)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.ReadPacket(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// repeatReader yields data over and over.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}
