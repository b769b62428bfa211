package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
)

// TestListenerActorRestartsAndRebinds: a listener is an actor; when it fails (here a chaos
// panic through the console) its supervisor restarts it and it binds the same port again, so
// new clients can connect where they could before, and clients already connected are not
// touched.
func TestListenerActorRestartsAndRebinds(t *testing.T) {
	b := startBroker(t, func(c *config.Config) {
		c.Console.Listen = "127.0.0.1:0"
		c.Console.Chaos = true
	})
	before := dialRaw(t, b.TCP311, codec.V311)
	before.Connect("before")

	u := "http://" + b.ConsoleAddr().String() + "/api/v1/actors/" + url.PathEscape("listeners/mqtt") + "/kill?mode=panic"
	resp, err := http.Post(u, "application/json", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		t.Fatalf("kill listener: HTTP %d", resp.StatusCode)
	}

	// The same address accepts again once the listener has rebound.
	var after *rawClient
	waitFor(t, 5*time.Second, "the listener to accept again on "+b.TCP311, func() bool {
		c, ok := connectsNow(t, b.TCP311, "after")
		after = c
		return ok
	})
	if b.Addr("mqtt").String() != b.TCP311 {
		t.Errorf("listener moved from %s to %s", b.TCP311, b.Addr("mqtt"))
	}
	// The connection from before the restart still works.
	before.Send(&codec.Pingreq{})
	if _, ok := before.Read().(*codec.Pingresp); !ok {
		t.Error("a client connected before the listener restart lost its connection")
	}
	after.Send(&codec.Disconnect{})
}
