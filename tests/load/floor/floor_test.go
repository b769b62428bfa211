package main

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// The yardstick must be a server real clients connect to, or its connect cost measures
// nothing: paho's 3.1.1 client and paho.golang's 5.0 client connect, ping and leave.
func TestRealClientsConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serve(ln)

	t.Run("3.1.1", func(t *testing.T) {
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + ln.Addr().String()).
			SetClientID("floor-311").SetProtocolVersion(4).SetAutoReconnect(false)
		c := mqtt.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("3.1.1 connect: %v", tok.Error())
		}
		c.Disconnect(100)
	})
	t.Run("5.0", func(t *testing.T) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c := paho.NewClient(paho.ClientConfig{Conn: conn})
		ack, err := c.Connect(ctx, &paho.Connect{ClientID: "floor-5", CleanStart: true, KeepAlive: 30})
		if err != nil || ack.ReasonCode != 0 {
			t.Fatalf("5.0 connect: %v %+v", err, ack)
		}
		if err := c.Disconnect(&paho.Disconnect{}); err != nil {
			t.Fatal(err)
		}
	})
}

// A body longer than the bound is refused before it is allocated.
func TestOversizedPacketEndsTheConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serve(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// CONNECT with a remaining length of 2^21 bytes, none of which follow.
	if _, err := c.Write([]byte{0x10, 0x80, 0x80, 0x80, 0x01}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if n, err := c.Read(b[:]); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read %d bytes, err %v: want the connection closed (EOF), not left waiting for the body", n, err)
	}
}
