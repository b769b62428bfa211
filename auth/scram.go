package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5.0 enhanced authentication method. The
// exchange on the wire:
//
//	CONNECT  Authentication Method "SCRAM-SHA-256", Data client-first-message
//	AUTH     0x18, Data server-first-message          (broker)
//	AUTH     0x18, Data client-final-message          (client)
//	CONNACK  0x00, Data server-final-message          (broker proves it knows the key too)
//
// The broker stores StoredKey and ServerKey (RFC 5803's format) in the password file, never
// the password; a stolen file does not let anyone log in without a PBKDF2 search. Channel
// binding is not offered (gs2 flag "n" or "y").

const (
	scramName       = "SCRAM-SHA-256"
	scramIterations = 4096 // RFC 7677's minimum
	scramSaltLen    = 16
)

// scramCred is what the password file holds for a SCRAM user.
type scramCred struct {
	iter                 int
	salt                 []byte
	storedKey, serverKey []byte
}

// newSCRAMCred derives the stored keys for password.
func newSCRAMCred(password []byte) (*scramCred, error) {
	salt := make([]byte, scramSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	salted, err := pbkdf2.Key(sha256.New, string(password), salt, scramIterations, sha256.Size)
	if err != nil {
		return nil, err
	}
	clientKey := hmacSum(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return &scramCred{iter: scramIterations, salt: salt, storedKey: stored[:], serverKey: hmacSum(salted, "Server Key")}, nil
}

// String is RFC 5803's form: SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>.
func (c *scramCred) String() string {
	b := base64.StdEncoding
	return fmt.Sprintf("%s$%d:%s$%s:%s", scramName, c.iter, b.EncodeToString(c.salt), b.EncodeToString(c.storedKey), b.EncodeToString(c.serverKey))
}

func parseSCRAMCred(s string) (*scramCred, error) {
	rest, ok := strings.CutPrefix(s, scramName+"$")
	if !ok {
		return nil, errors.New("want SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey")
	}
	params, keys, ok := strings.Cut(rest, "$")
	iterS, saltS, ok1 := strings.Cut(params, ":")
	storedS, serverS, ok2 := strings.Cut(keys, ":")
	if !ok || !ok1 || !ok2 {
		return nil, errors.New("want SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey")
	}
	c := &scramCred{}
	var err error
	if c.iter, err = strconv.Atoi(iterS); err != nil || c.iter < scramIterations {
		return nil, fmt.Errorf("iteration count %q: want a number of at least %d", iterS, scramIterations)
	}
	b := base64.StdEncoding
	if c.salt, err = b.DecodeString(saltS); err != nil || len(c.salt) == 0 {
		return nil, errors.New("salt is not base64")
	}
	if c.storedKey, err = b.DecodeString(storedS); err != nil || len(c.storedKey) != sha256.Size {
		return nil, errors.New("StoredKey is not a base64 SHA-256 value")
	}
	if c.serverKey, err = b.DecodeString(serverS); err != nil || len(c.serverKey) != sha256.Size {
		return nil, errors.New("ServerKey is not a base64 SHA-256 value")
	}
	return c, nil
}

func hmacSum(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

type scramMethod struct{ s *Service }

func (scramMethod) Name() string { return scramName }

func (m scramMethod) Start() Exchange { return &scramServer{s: m.s} }

// scramServer is the broker's side of one exchange.
type scramServer struct {
	s         *Service
	step      int
	user      string
	cred      *scramCred // nil for an unknown user: the exchange runs on and fails at the end
	gs2       string
	firstBare string
	first     string // server-first-message
	nonce     string
}

func (x *scramServer) Next(data []byte) ([]byte, string, error) {
	x.step++
	switch x.step {
	case 1:
		return x.clientFirst(string(data))
	case 2:
		return x.clientFinal(string(data))
	}
	return nil, "", ErrAuthFailed
}

func (x *scramServer) clientFirst(msg string) ([]byte, string, error) {
	// gs2-header: "n,," or "y,," (no channel binding), optionally with an authzid we ignore.
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok || (flag != "n" && flag != "y") {
		return nil, "", errors.New("channel binding is not supported; want gs2 flag n or y")
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok || (authz != "" && !strings.HasPrefix(authz, "a=")) {
		return nil, "", errors.New("malformed client-first-message")
	}
	x.gs2 = flag + "," + authz + ","
	x.firstBare = bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) < 3 {
		return nil, "", errors.New("malformed client-first-message")
	}
	user, err := saslName(attrs[0][2:])
	if err != nil {
		return nil, "", err
	}
	x.user = user
	if pw := x.s.passwords.Load(); pw != nil {
		x.cred = pw.scram[user]
	}
	salt, iter := fakeSalt(user), scramIterations
	if x.cred != nil {
		salt, iter = x.cred.salt, x.cred.iter
	}
	var sn [18]byte
	if _, err := rand.Read(sn[:]); err != nil {
		return nil, "", err
	}
	x.nonce = attrs[1][2:] + base64.RawStdEncoding.EncodeToString(sn[:])
	x.first = "r=" + x.nonce + ",s=" + base64.StdEncoding.EncodeToString(salt) + ",i=" + strconv.Itoa(iter)
	return []byte(x.first), "", ErrContinue
}

func (x *scramServer) clientFinal(msg string) ([]byte, string, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, "", errors.New("malformed client-final-message")
	}
	without, proofS := msg[:i], msg[i+3:]
	attrs := strings.Split(without, ",")
	if len(attrs) < 2 || attrs[0] != "c="+base64.StdEncoding.EncodeToString([]byte(x.gs2)) || attrs[1] != "r="+x.nonce {
		return nil, "", errors.New("channel binding or nonce does not match")
	}
	proof, err := base64.StdEncoding.DecodeString(proofS)
	if err != nil || len(proof) != sha256.Size || x.cred == nil {
		return nil, "", ErrAuthFailed
	}
	authMsg := x.firstBare + "," + x.first + "," + without
	sig := hmacSum(x.cred.storedKey, authMsg)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	got := sha256.Sum256(clientKey)
	if !hmac.Equal(got[:], x.cred.storedKey) {
		return nil, "", ErrAuthFailed
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacSum(x.cred.serverKey, authMsg))), x.user, nil
}

// saslName decodes RFC 5802's escapes: "=2C" is ',' and "=3D" is '='.
func saslName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("malformed user name")
		}
		i += 2
	}
	return b.String(), nil
}

var fakeKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

// fakeSalt is a stable salt for a user name that has no SCRAM entry, so the answer does not
// tell whether the user exists.
func fakeSalt(user string) []byte { return hmacSum(fakeKey, user)[:scramSaltLen] }

// SCRAMClient is the client's side of SCRAM-SHA-256, for tests and tools.
type SCRAMClient struct {
	User, Password string
	nonce, first   string
	serverSig      []byte
}

// First returns the client-first-message.
func (c *SCRAMClient) First() []byte {
	var n [18]byte
	_, _ = rand.Read(n[:])
	c.nonce = base64.RawStdEncoding.EncodeToString(n[:])
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.User)
	c.first = "n=" + name + ",r=" + c.nonce
	return []byte("n,," + c.first)
}

// Final answers the server-first-message with the client-final-message.
func (c *SCRAMClient) Final(serverFirst []byte) ([]byte, error) {
	attrs := strings.Split(string(serverFirst), ",")
	if len(attrs) < 3 || !strings.HasPrefix(attrs[0], "r="+c.nonce) {
		return nil, errors.New("server nonce does not extend ours")
	}
	salt, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(attrs[1], "s="))
	if err != nil {
		return nil, err
	}
	iter, err := strconv.Atoi(strings.TrimPrefix(attrs[2], "i="))
	if err != nil {
		return nil, err
	}
	salted, err := pbkdf2.Key(sha256.New, c.Password, salt, iter, sha256.Size)
	if err != nil {
		return nil, err
	}
	without := "c=" + base64.StdEncoding.EncodeToString([]byte("n,,")) + "," + attrs[0]
	authMsg := c.first + "," + string(serverFirst) + "," + without
	clientKey := hmacSum(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	sig := hmacSum(stored[:], authMsg)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	c.serverSig = hmacSum(hmacSum(salted, "Server Key"), authMsg)
	return []byte(without + ",p=" + base64.StdEncoding.EncodeToString(clientKey)), nil
}

// Verify checks the server-final-message: the server knew the key too.
func (c *SCRAMClient) Verify(serverFinal []byte) error {
	want := "v=" + base64.StdEncoding.EncodeToString(c.serverSig)
	if !hmac.Equal([]byte(want), serverFinal) {
		return errors.New("the server's signature does not match")
	}
	return nil
}
