package tests

// Interoperability with the mosquitto command-line clients (Debian package mosquitto-clients),
// starting with the README's quick start, run literally.

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// mosquittoQuickStart reads the README's quick start: the fenced block after each marker.
func mosquittoQuickStart(t *testing.T) (subscribe string, publish, output []string) {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	sub := mosquittoBlock(t, string(readme), "<!-- quickstart:subscribe -->")
	if len(sub) != 1 {
		t.Fatalf("README quickstart:subscribe block has %d lines, want one command", len(sub))
	}
	return sub[0], mosquittoBlock(t, string(readme), "<!-- quickstart:publish -->"),
		mosquittoBlock(t, string(readme), "<!-- quickstart:output -->")
}

// mosquittoBlock returns the non-empty lines of the first fenced code block after marker.
func mosquittoBlock(t *testing.T, doc, marker string) []string {
	t.Helper()
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("README has no %s marker", marker)
	}
	sc := bufio.NewScanner(strings.NewReader(doc[i+len(marker):]))
	var lines []string
	inBlock := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```") && !inBlock:
			inBlock = true
		case strings.HasPrefix(line, "```"):
			return lines
		case inBlock && strings.TrimSpace(line) != "":
			lines = append(lines, line)
		case !inBlock && strings.TrimSpace(line) != "":
			t.Fatalf("README: text %q between %s and its code block", line, marker)
		}
	}
	t.Fatalf("README: no complete code block after %s", marker)
	return nil
}

// mosquittoSplit splits a command line into arguments as a POSIX shell would for the simple
// cases the README uses: words separated by blanks, single quotes kept together and removed.
func mosquittoSplit(t *testing.T, line string) []string {
	t.Helper()
	var args []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			cur.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.ContainsRune("\"\\$`|&;<>(){}*?", r):
			t.Fatalf("command %q needs a real shell (%q): keep README commands simple", line, r)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("command %q: unterminated quote", line)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args
}

// mosquittoPorts rewrites the README's default ports to the test broker's.
func mosquittoPorts(t *testing.T, b *testBroker, line string) string {
	t.Helper()
	if !strings.Contains(line, "-p 1883") && !strings.Contains(line, "-p 1884") {
		t.Fatalf("command %q names neither -p 1883 nor -p 1884: the test cannot point it at its broker", line)
	}
	line = strings.ReplaceAll(line, "-p 1883", "-p "+mosquittoPort(t, b.TCP311))
	return strings.ReplaceAll(line, "-p 1884", "-p "+mosquittoPort(t, b.TCP5))
}

func mosquittoPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return port
}

// mosquittoSub is a running mosquitto_sub.
type mosquittoSub struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan error
}

// mosquittoStartSub starts mosquitto_sub with args (args[0] is the program), waits until the
// broker holds at least subs subscriptions, and kills it at the end of the test if still
// running.
func mosquittoStartSub(t *testing.T, b *testBroker, subs int64, args []string) *mosquittoSub {
	t.Helper()
	needProgram(t, args[0], "mosquitto-clients")
	s := &mosquittoSub{cmd: exec.Command(args[0], args[1:]...), done: make(chan error, 1)}
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	deadline := time.Now().Add(v3Wait)
	for b.Stats().Subscriptions.Load() < subs {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("%v exited before subscribing: %v\nstderr: %s", args, err, s.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not subscribe within %v\nstderr: %s", args, v3Wait, s.stderr.String())
		}
	}
	return s
}

// wait waits for mosquitto_sub to exit on its own (-C count) and returns its output lines.
func (s *mosquittoSub) wait(t *testing.T) []string {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("mosquitto_sub: %v\nstdout: %s\nstderr: %s", err, s.stdout.String(), s.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("mosquitto_sub still running after 15s\nstdout: %s\nstderr: %s", s.stdout.String(), s.stderr.String())
	}
	return strings.Split(strings.TrimRight(s.stdout.String(), "\n"), "\n")
}

// interrupt stops mosquitto_sub as Ctrl-C does, and waits for it to exit. mosquitto_sub 2.0.11
// can deadlock in its SIGINT handler: a signal that lands while its loop holds the connection's
// packet lock (still inside the write of the SUBSCRIBE the broker has already counted) makes
// the handler's disconnect wait for that lock forever. What the tests check is the broker's
// side, so a client stuck that way is killed, as its user would.
func (s *mosquittoSub) interrupt(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(os.Interrupt)
	var err error
	select {
	case err = <-s.done:
	case <-time.After(3 * time.Second):
		t.Log("mosquitto_sub hung in its SIGINT handler (a mosquitto-clients 2.0.11 bug); killing it")
		_ = s.cmd.Process.Kill()
		err = <-s.done
	}
	s.done <- err // for the cleanup
}

// mosquittoRun runs a mosquitto program to completion.
func mosquittoRun(t *testing.T, args []string) {
	t.Helper()
	needProgram(t, args[0], "mosquitto-clients")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func mosquittoSameLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("mosquitto_sub printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The README's quick start, literally: its mosquitto_sub (3.1.1 on the first port) prints what
// its two mosquitto_pub commands (3.1.1 on the first port, 5.0 on the second) publish, exactly
// as the README says it does.
func TestMosquittoReadmeQuickStart(t *testing.T) {
	needProgram(t, "mosquitto_sub", "mosquitto-clients")
	subCmd, pubCmds, want := mosquittoQuickStart(t)
	if len(pubCmds) == 0 || len(want) == 0 {
		t.Fatalf("README quick start: %d publish commands, %d output lines", len(pubCmds), len(want))
	}
	b := startBroker(t)

	subArgs := mosquittoSplit(t, mosquittoPorts(t, b, subCmd))
	if subArgs[0] != "mosquitto_sub" {
		t.Fatalf("quickstart:subscribe runs %q, want mosquitto_sub", subArgs[0])
	}
	subArgs = append(subArgs, "-C", "2", "-W", "10")
	sub := mosquittoStartSub(t, b, 1, subArgs)
	for _, line := range pubCmds {
		args := mosquittoSplit(t, mosquittoPorts(t, b, line))
		if args[0] != "mosquitto_pub" {
			t.Fatalf("quickstart:publish runs %q, want mosquitto_pub", args[0])
		}
		mosquittoRun(t, args)
	}
	mosquittoSameLines(t, sub.wait(t), want)
}

// A 5.0 mosquitto_sub on the 5.0 port receives what a 3.1.1 mosquitto_pub sends to the 3.1.1
// port.
func TestMosquittoV5SubscriberV311Publisher(t *testing.T) {
	needProgram(t, "mosquitto_sub", "mosquitto-clients")
	b := startBroker(t)
	sub := mosquittoStartSub(t, b, 1, []string{"mosquitto_sub", "-h", "127.0.0.1", "-p", mosquittoPort(t, b.TCP5),
		"-V", "mqttv5", "-q", "1", "-t", "mosq/cross", "-v", "-C", "1", "-W", "10"})
	mosquittoRun(t, []string{"mosquitto_pub", "-h", "127.0.0.1", "-p", mosquittoPort(t, b.TCP311),
		"-V", "mqttv311", "-q", "1", "-t", "mosq/cross", "-m", "from 3.1.1"})
	mosquittoSameLines(t, sub.wait(t), []string{"mosq/cross from 3.1.1"})
}

// [MQTT-3.3.1-5] a message published with -r is stored, and [MQTT-3.3.1-6, -8] a later
// mosquitto_sub gets it with the retain flag set.
func TestMosquittoRetained(t *testing.T) {
	needProgram(t, "mosquitto_pub", "mosquitto-clients")
	b := startBroker(t)
	port := mosquittoPort(t, b.TCP311)
	mosquittoRun(t, []string{"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv311",
		"-q", "1", "-r", "-t", "mosq/retained", "-m", "kept for later"})
	waitFor(t, v3Wait, "the message to be retained", func() bool { return b.Stats().Retained.Load() == 1 })

	sub := mosquittoStartSub(t, b, 0, []string{"mosquitto_sub", "-h", "127.0.0.1", "-p", port,
		"-V", "mqttv311", "-t", "mosq/#", "-F", "%r %t %p", "-C", "1", "-W", "10"})
	mosquittoSameLines(t, sub.wait(t), []string{"1 mosq/retained kept for later"})
}

// The README's persistence example, literally: a mosquitto_sub with clean session off and a
// client id subscribes and goes away, mosquitto_pub publishes at QoS 1, the broker is stopped
// and started again on the same store, and the same mosquitto_sub prints the message
// [MQTT-3.1.2-4] [MQTT-3.2.2-2].
func TestMosquittoReadmePersistence(t *testing.T) {
	needProgram(t, "mosquitto_sub", "mosquitto-clients")
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	subCmd := mosquittoBlock(t, string(readme), "<!-- persistence:subscribe -->")
	pubCmd := mosquittoBlock(t, string(readme), "<!-- persistence:publish -->")
	want := mosquittoBlock(t, string(readme), "<!-- persistence:output -->")
	if len(subCmd) != 1 || len(pubCmd) != 1 {
		t.Fatalf("README persistence: %d subscribe and %d publish lines, want one each", len(subCmd), len(pubCmd))
	}
	r := newRestartable(t)

	first := mosquittoStartSub(t, r.testBroker, 1, mosquittoSplit(t, mosquittoPorts(t, r.testBroker, subCmd[0])))
	first.interrupt(t)
	waitFor(t, v3Wait, "the subscriber to be gone", func() bool { return r.Stats().Connected.Load() == 0 })
	mosquittoRun(t, mosquittoSplit(t, mosquittoPorts(t, r.testBroker, pubCmd[0])))

	r.restart()

	again := mosquittoSplit(t, mosquittoPorts(t, r.testBroker, subCmd[0]))
	sub := mosquittoStartSub(t, r.testBroker, 0, append(again, "-C", "1", "-W", "10"))
	mosquittoSameLines(t, sub.wait(t), want)
	endSessions(t, r.testBroker, "keeper")
}
