package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Passwords is a parsed password file: one "user:hash" line per user, where hash is a bcrypt
// hash ($2a$, $2b$ or $2y$), optionally followed by ":" and a SCRAM-SHA-256 entry (RFC 5803's
// form) for enhanced authentication. Blank lines and lines starting with # are ignored. The file
// holds no password in clear, so a leaked copy costs an attacker a search per guess.
type Passwords struct {
	hashes map[string][]byte
	scram  map[string]*scramCred
}

// ParsePasswords reads a password file; name labels errors ("file:line: ...").
func ParsePasswords(r io.Reader, name string) (*Passwords, error) {
	p := &Passwords{hashes: make(map[string][]byte), scram: make(map[string]*scramCred)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: want user:bcrypt-hash", name, n)
		}
		hash, scram, hasSCRAM := strings.Cut(hash, ":") // a bcrypt hash has no ':'
		if hasSCRAM {
			c, err := parseSCRAMCred(scram)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: user %q: %v", name, n, user, err)
			}
			p.scram[user] = c
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: not a bcrypt hash (make one with: actormq passwd %s %s)", name, n, user, name, user)
		}
		if _, dup := p.hashes[user]; dup {
			return nil, fmt.Errorf("%s:%d: user %q appears twice", name, n, user)
		}
		p.hashes[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// LoadPasswords reads the password file at path.
func LoadPasswords(path string) (*Passwords, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	return ParsePasswords(f, path)
}

// Len is the number of users.
func (p *Passwords) Len() int { return len(p.hashes) }

// Has says whether user has an entry.
func (p *Passwords) Has(user string) bool {
	_, ok := p.hashes[user]
	return ok
}

var (
	dummyOnce sync.Once
	dummyHash []byte
)

// Check says whether password is user's. It costs one bcrypt comparison whether or not the user
// exists, so the time taken does not tell an attacker which user names are real.
func (p *Passwords) Check(user string, password []byte) bool {
	hash, ok := p.hashes[user]
	if !ok {
		dummyOnce.Do(func() { dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost) })
		_ = bcrypt.CompareHashAndPassword(dummyHash, password)
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, password) == nil
}

// ValidUser reports why a user name cannot go into a password file, or nil.
func ValidUser(user string) error {
	switch {
	case user == "":
		return errors.New("the user name is empty")
	case strings.ContainsAny(user, ":\r\n"):
		return errors.New("a user name may not contain ':' or a line break")
	case strings.TrimSpace(user) != user || user[0] == '#':
		return errors.New("a user name may not start with '#' or start or end with a space")
	}
	return nil
}

// PasswordOptions tune SetPassword.
type PasswordOptions struct {
	Cost  int  // bcrypt cost; 0: bcrypt.DefaultCost
	SCRAM bool // also store SCRAM-SHA-256 keys, for auth.scram
}

// SetPassword creates or updates user's entry in the password file at path (creating the file,
// mode 0600, when missing) with a bcrypt hash of password. Other lines, comments included, are
// kept. The file is replaced atomically, so a broker reloading it meanwhile reads either the old
// or the new file.
func SetPassword(path, user string, password []byte, o PasswordOptions) error {
	if err := ValidUser(user); err != nil {
		return err
	}
	if len(password) == 0 {
		return errors.New("the password is empty")
	}
	if o.Cost == 0 {
		o.Cost = bcrypt.DefaultCost
	}
	hash, err := bcrypt.GenerateFromPassword(password, o.Cost)
	if err != nil {
		return err
	}
	entry := user + ":" + string(hash)
	if o.SCRAM {
		c, err := newSCRAMCred(password)
		if err != nil {
			return err
		}
		entry += ":" + c.String()
	}
	old, err := os.ReadFile(path)
	mode := os.FileMode(0o600)
	if err == nil {
		if _, err := ParsePasswords(bytes.NewReader(old), path); err != nil {
			return err // do not rewrite a file we do not understand
		}
		if st, err := os.Stat(path); err == nil {
			mode = st.Mode().Perm()
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var out bytes.Buffer
	replaced := false
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if line == "" {
			continue
		}
		t := strings.TrimSpace(line)
		if u, _, ok := strings.Cut(t, ":"); ok && t[0] != '#' && u == user {
			out.WriteString(entry + "\n")
			replaced = true
			continue
		}
		out.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			out.WriteByte('\n')
		}
	}
	if !replaced {
		out.WriteString(entry + "\n")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
