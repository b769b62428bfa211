package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/actormq/actormq/config"
)

func TestPasswordFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(path, []byte("# users\n\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	fast := PasswordOptions{Cost: bcrypt.MinCost}
	for _, u := range []struct{ user, pw string }{{"alice", "a1"}, {"bob", "b1"}, {"alice", "a2"}} {
		if err := SetPassword(path, u.user, []byte(u.pw), fast); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# users\n") || strings.Count(string(data), "alice:") != 1 || strings.Contains(string(data), "a2") {
		t.Fatalf("file:\n%s", data)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v: an update must keep the file's mode", st.Mode().Perm())
	}
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, pw string
		ok       bool
	}{{"alice", "a2", true}, {"alice", "a1", false}, {"bob", "b1", true}, {"carol", "b1", false}, {"bob", "", false}} {
		if got := p.Check(c.user, []byte(c.pw)); got != c.ok {
			t.Errorf("Check(%q, %q) = %v", c.user, c.pw, got)
		}
	}
	// A new file is private.
	fresh := filepath.Join(t.TempDir(), "new")
	if err := SetPassword(fresh, "x", []byte("y"), fast); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(fresh); st.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %v, want 0600", st.Mode().Perm())
	}
	for _, bad := range []string{"", "a:b", "#x", " x", "a\nb"} {
		if SetPassword(fresh, bad, []byte("y"), fast) == nil {
			t.Errorf("user %q accepted", bad)
		}
	}
	if SetPassword(fresh, "x", nil, fast) == nil {
		t.Error("empty password accepted")
	}
}

func TestPasswordFileErrorsNameFileAndLine(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"alice\n", "f:1: want user:bcrypt-hash"},
		{"# c\nalice:plaintext\n", `f:2: user "alice": not a bcrypt hash`},
		{"a:$2a$04$C6UzMDM.H6dfI/f/IKxGhu3WBGmtHUe6lJXl6Aq0sPxa/7zlZ7X1a\na:$2a$04$C6UzMDM.H6dfI/f/IKxGhu3WBGmtHUe6lJXl6Aq0sPxa/7zlZ7X1a\n", `f:2: user "a" appears twice`},
	} {
		_, err := ParsePasswords(strings.NewReader(c.body), "f")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.body, err, c.want)
		}
	}
	if _, err := LoadPasswords("/nonexistent/passwd"); err == nil || !strings.Contains(err.Error(), "/nonexistent/passwd") {
		t.Errorf("missing file: %v", err)
	}
}

const aclText = `
# every client
allow read public/#
allow readwrite devices/%c/#
deny write public/announcements
allow read $SYS/broker/uptime

user alice
allow readwrite alice/#
allow readwrite users/%u/#
deny read alice/secret/#

user admin
allow readwrite #
allow read $SYS/#

anonymous
allow write anon/inbox
`

func TestACL(t *testing.T) {
	a, err := ParseACL(strings.NewReader(aclText), "acl")
	if err != nil {
		t.Fatal(err)
	}
	pub := []struct {
		user, client, topic string
		ok                  bool
	}{
		{"alice", "c1", "alice/x", true},
		{"alice", "c1", "users/alice/x", true},
		{"bob", "c1", "users/alice/x", false},
		{"bob", "c1", "users/bob/x", false}, // %u rules are alice's block only
		{"alice", "c1", "devices/c1/temp", true},
		{"alice", "c1", "devices/c2/temp", false},
		{"", "c1", "devices/c1/temp", true},
		{"", "c1", "anon/inbox", true},
		{"alice", "c1", "anon/inbox", false},
		{"", "c1", "public/x", false},                  // read only
		{"admin", "c1", "public/announcements", false}, // deny wins over admin's #
		{"admin", "c1", "anything/at/all", true},
		{"", "+", "devices/+/x", false}, // a wildcard client id gains nothing
		{"", "a/b", "devices/a/b/x", false},
	}
	for _, c := range pub {
		if got := a.CanPublish(c.user, c.client, c.topic); got != c.ok {
			t.Errorf("publish %s/%s %q = %v, want %v", c.user, c.client, c.topic, got, c.ok)
		}
	}
	sub := []struct {
		user, client, filter string
		ok                   bool
	}{
		{"", "c", "public/#", true},
		{"", "c", "public/+/x", true},
		{"", "c", "#", false},            // covers more than public/#
		{"", "c", "public", true},        // public/# covers its parent
		{"alice", "c", "alice/#", false}, // overlaps the denied alice/secret/#
		{"alice", "c", "alice/open/+", true},
		{"alice", "c", "alice/+/x", false}, // can match alice/secret/x
		{"alice", "c", "alice/secret/k", false},
		{"admin", "c", "#", true},
		{"admin", "c", "$SYS/#", true},
		{"alice", "c", "$SYS/#", false},
		{"alice", "c", "$SYS/broker/uptime", true},
		{"bob", "c", "devices/c/#", true},
		{"bob", "c", "devices/+/#", false},
	}
	for _, c := range sub {
		if got := a.CanSubscribe(c.user, c.client, c.filter); got != c.ok {
			t.Errorf("subscribe %s/%s %q = %v, want %v", c.user, c.client, c.filter, got, c.ok)
		}
	}
}

func TestACLMatchers(t *testing.T) {
	for _, c := range []struct {
		rule, sub string
		covers    bool
		overlaps  bool
	}{
		{"#", "a/b", true, true},
		{"#", "$SYS/x", false, false},
		{"+/b", "a/b", true, true},
		{"a/+", "a/#", false, true},
		{"a/#", "a", true, true},
		{"a/#", "a/+/c", true, true},
		{"a/b", "a/+", false, true},
		{"a/b", "a/c", false, false},
		{"a/+/c", "a/b/d", false, false},
		{"a/+", "a/b/c", false, false},
		{"$SYS/#", "$SYS/a", true, true},
		{"+/x", "$SYS/x", false, false},
	} {
		if got := covers(c.rule, c.sub); got != c.covers {
			t.Errorf("covers(%q, %q) = %v", c.rule, c.sub, got)
		}
		if got := overlaps(c.rule, c.sub); got != c.overlaps {
			t.Errorf("overlaps(%q, %q) = %v", c.rule, c.sub, got)
		}
		if got := overlaps(c.sub, c.rule); got != c.overlaps {
			t.Errorf("overlaps(%q, %q) = %v (not symmetric)", c.sub, c.rule, got)
		}
	}
}

func TestACLErrorsNameLine(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"allow read\n", "acl:1: want: allow read|write|readwrite FILTER"},
		{"\n\nallow rw a\n", `acl:3: access "rw"`},
		{"allow read a/#/b\n", `acl:1: filter "a/#/b"`},
		{"permit read a\n", `acl:1: unknown statement "permit"`},
		{"user\n", "acl:1: want: user NAME"},
		{"allow read $share/g/a\n", "leave out $share"},
	} {
		_, err := ParseACL(strings.NewReader(c.body), "acl")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.body, err, c.want)
		}
	}
}

func TestBuckets(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBucket(10, 5)
	for i := 0; i < 5; i++ {
		if !b.Allow(now, 1) {
			t.Fatalf("burst: %d refused", i)
		}
	}
	if b.Allow(now, 1) {
		t.Fatal("past the burst")
	}
	if !b.Allow(now.Add(100*time.Millisecond), 1) {
		t.Fatal("no refill after 100ms at 10/s")
	}
	left := b.Take(now.Add(100*time.Millisecond), 3)
	if left != -3 || b.Wait(left) != 300*time.Millisecond {
		t.Fatalf("debt %v wait %v", left, b.Wait(left))
	}

	k := NewKeyed(1, 2)
	if !k.Allow("a", now, 1) || !k.Allow("a", now, 1) || k.Allow("a", now, 1) {
		t.Fatal("keyed burst")
	}
	if !k.Allow("b", now, 1) {
		t.Fatal("keys share a bucket")
	}
	// Full buckets are forgotten once the map is large.
	for i := 0; i < 2000; i++ {
		k.Allow(string(rune('A'+i%26))+time.Duration(i).String(), now, 1)
	}
	k.Allow("late", now.Add(time.Hour), 1)
	if n := k.Len(); n > 10 {
		t.Errorf("%d keys remembered after every bucket refilled", n)
	}

	p := &PublishLimit{msgs: NewBucket(10, 10), bytes: NewBucket(100, 100)}
	for i := 0; i < 10; i++ {
		if d, _ := p.Take(now, 1); d != 0 {
			t.Fatalf("message %d within the rate: debt %v", i, d)
		}
	}
	if d, far := p.Take(now, 1); d == 0 || far {
		t.Fatalf("11th message: debt %v far %v", d, far)
	}
	if _, far := p.Take(now, 500); !far {
		t.Fatal("500 bytes at 100 B/s is far over")
	}
}

func TestServiceLogins(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	if err := SetPassword(pwFile, "alice", []byte("secret"), PasswordOptions{Cost: bcrypt.MinCost}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().Auth
	cfg.AllowAnonymous = false
	cfg.PasswordFile = pwFile
	cfg.MaxFailedLoginsPerMinute = 2
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	check := func(l Login, wantUser string, want Verdict) {
		t.Helper()
		if user, v := s.Check(l); user != wantUser || v != want {
			t.Errorf("%+v: %q %v, want %q %v", l, user, v, wantUser, want)
		}
	}
	check(Login{Source: "1.1.1.1", Username: "alice", HasUsername: true, Password: []byte("secret"), HasPassword: true}, "alice", Accepted)
	check(Login{Source: "1.1.1.1"}, "", NotAuthorized)
	check(Login{Source: "1.1.1.1", CertUser: "dev"}, "dev", Accepted)
	check(Login{Source: "2.2.2.2", Username: "alice", HasUsername: true, Password: []byte("x"), HasPassword: true}, "", BadCredentials)
	check(Login{Source: "2.2.2.2", Password: []byte("x"), HasPassword: true}, "", BadCredentials)
	// Two failures used up 2.2.2.2's minute: even the right password is not checked now.
	check(Login{Source: "2.2.2.2", Username: "alice", HasUsername: true, Password: []byte("secret"), HasPassword: true}, "", RateLimited)
	check(Login{Source: "1.1.1.1", Username: "alice", HasUsername: true, Password: []byte("secret"), HasPassword: true}, "alice", Accepted)

	// Reload: a broken file keeps the old one; a good one replaces it.
	if err := os.WriteFile(pwFile, []byte("broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), pwFile) {
		t.Errorf("reload of a broken file: %v", err)
	}
	check(Login{Source: "3.3.3.3", Username: "alice", HasUsername: true, Password: []byte("secret"), HasPassword: true}, "alice", Accepted)
	if err := os.Remove(pwFile); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(pwFile, "bob", []byte("b"), PasswordOptions{Cost: bcrypt.MinCost}); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	check(Login{Source: "3.3.3.3", Username: "alice", HasUsername: true, Password: []byte("secret"), HasPassword: true}, "", BadCredentials)
	check(Login{Source: "3.3.3.3", Username: "bob", HasUsername: true, Password: []byte("b"), HasPassword: true}, "bob", Accepted)

	// Without a password file a user name proves nothing: anonymous.
	open, _ := New(config.Default().Auth)
	if user, v := open.Check(Login{Username: "root", HasUsername: true}); user != "" || v != Accepted {
		t.Errorf("no password file: %q %v", user, v)
	}
	if _, err := New(config.Auth{ACLFile: filepath.Join(dir, "missing.acl")}); err == nil || !strings.Contains(err.Error(), "missing.acl") {
		t.Errorf("missing ACL file: %v", err)
	}
}

func TestSCRAM(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	if err := SetPassword(pwFile, "al,i=ce", []byte("pencil"), PasswordOptions{Cost: bcrypt.MinCost, SCRAM: true}); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(pwFile, "nobody", []byte("x"), PasswordOptions{Cost: bcrypt.MinCost}); err != nil {
		t.Fatal(err)
	}
	s, err := New(config.Auth{PasswordFile: pwFile, SCRAM: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Method("SCRAM-SHA-1") != nil || s.Method(scramName) == nil {
		t.Fatal("methods offered")
	}
	run := func(user, pw string) (string, error) {
		c := &SCRAMClient{User: user, Password: pw}
		x := s.Method(scramName).Start()
		first, _, err := x.Next(c.First())
		if err != ErrContinue {
			return "", err
		}
		final, err := c.Final(first)
		if err != nil {
			return "", err
		}
		sig, u, err := x.Next(final)
		if err != nil {
			return "", err
		}
		return u, c.Verify(sig)
	}
	if u, err := run("al,i=ce", "pencil"); err != nil || u != "al,i=ce" {
		t.Errorf("good password: %q %v", u, err)
	}
	for _, c := range []struct{ user, pw string }{{"al,i=ce", "pen"}, {"nobody", "x"}, {"ghost", "x"}} {
		if _, err := run(c.user, c.pw); err == nil {
			t.Errorf("%s/%s accepted", c.user, c.pw)
		}
	}
	// Malformed first messages and channel binding are refused.
	for _, m := range []string{"", "p=tls-unique,,n=a,r=x", "n,,r=x", "n,,n=a"} {
		if _, _, err := s.Method(scramName).Start().Next([]byte(m)); err == nil || err == ErrContinue {
			t.Errorf("%q: %v", m, err)
		}
	}
	// The bcrypt entry of a SCRAM user still works.
	if user, v := s.Check(Login{Username: "al,i=ce", HasUsername: true, Password: []byte("pencil"), HasPassword: true}); v != Accepted || user != "al,i=ce" {
		t.Errorf("password login of a SCRAM user: %v", v)
	}
}
