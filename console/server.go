package console

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pelletier/go-toml/v2"
	"go.uber.org/zap"

	"github.com/actormq/actormq/actors"
	"github.com/actormq/actormq/topics"
)

//go:embed page.html
var page []byte

// askTimeout bounds the requests the console makes to router shards.
const askTimeout = 2 * time.Second

// Server is a running console.
type Server struct {
	b        Backend
	log      *zap.Logger
	ln       net.Listener
	srv      *http.Server
	done     chan struct{}
	stopping atomic.Bool
}

// Start binds addr and serves the console until Close.
func Start(addr string, b Backend, log *zap.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errors.New("console.listen " + addr + ": " + err.Error())
	}
	s := &Server{b: b, log: log, ln: ln, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		// Short, so that a browser's idle keep-alive sockets do not hold goroutines for long.
		IdleTimeout: 5 * time.Second,
		ErrorLog:    zap.NewStdLog(log.WithOptions(zap.IncreaseLevel(zap.WarnLevel))),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("console stopped", zap.Error(err))
		}
	}()
	log.Info("console listening", zap.String("address", ln.Addr().String()),
		zap.Bool("chaos", b.Config().Console.Chaos))
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server: open requests get until ctx ends, then every connection is closed,
// so that no console goroutine outlives the broker.
func (s *Server) Close(ctx context.Context) error {
	s.stopping.Store(true)
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

// Handler is the console's own mux (never http.DefaultServeMux).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.stopping.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stopping"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", newMetrics(s.b))
	// Go's profiles, for "go tool pprof http://127.0.0.1:3030/debug/pprof/profile".
	mux.HandleFunc("GET /debug/pprof/", s.private(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/cmdline", s.private(pprof.Cmdline))
	mux.HandleFunc("GET /debug/pprof/profile", s.private(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", s.private(pprof.Symbol))
	mux.HandleFunc("GET /debug/pprof/trace", s.private(pprof.Trace))
	mux.HandleFunc("GET /api/v1/overview", s.overview)
	mux.HandleFunc("GET /api/v1/actors", s.actors)
	mux.HandleFunc("GET /api/v1/actors/{id...}", s.actor)
	mux.HandleFunc("POST /api/v1/actors/{rest...}", s.write(s.kill))
	mux.HandleFunc("GET /api/v1/clients", s.clients)
	mux.HandleFunc("GET /api/v1/clients/{id...}", s.client)
	mux.HandleFunc("POST /api/v1/clients/{rest...}", s.write(s.disconnect))
	mux.HandleFunc("GET /api/v1/subscriptions", s.subscriptions)
	mux.HandleFunc("GET /api/v1/retained", s.retained)
	mux.HandleFunc("GET /api/v1/router", s.router)
	mux.HandleFunc("GET /api/v1/config", s.config)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The page loads nothing from elsewhere; say so to the browser too.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
	w.Header().Set("X-Frame-Options", "DENY")
	_, _ = w.Write(page)
}

// Overview is the page's headline: counters and settings.
type Overview struct {
	Version        string         `json:"version"`
	StartedAt      time.Time      `json:"started_at"`
	UptimeSeconds  int64          `json:"uptime_seconds"`
	Chaos          bool           `json:"chaos"`
	TokenRequired  bool           `json:"token_required"`
	Connections    int64          `json:"connections"`
	Connected      int64          `json:"clients_connected"`
	Sessions       int64          `json:"sessions"`
	Subscriptions  int64          `json:"subscriptions"`
	Retained       int64          `json:"retained"`
	MessagesIn     uint64         `json:"messages_in"`
	MessagesOut    uint64         `json:"messages_out"`
	BytesIn        uint64         `json:"bytes_in"`
	BytesOut       uint64         `json:"bytes_out"`
	Dropped        uint64         `json:"dropped"`
	Goroutines     int            `json:"goroutines"`
	ActorRestarts  uint64         `json:"actor_restarts"`
	RouterShards   int            `json:"router_shards"`
	Listeners      []ListenerInfo `json:"listeners"`
	ConsoleVersion string         `json:"api"`
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	st := s.b.Stats()
	cfg := s.b.Config()
	var restarts uint64
	for _, n := range s.b.RestartsByKind() {
		restarts += n
	}
	writeJSON(w, http.StatusOK, Overview{
		Version: actors.Version, StartedAt: s.b.StartedAt(), UptimeSeconds: int64(time.Since(s.b.StartedAt()) / time.Second),
		Chaos: cfg.Console.Chaos, TokenRequired: cfg.Console.Token != "",
		Connections: st.Connections.Load(), Connected: st.Connected.Load(), Sessions: st.Sessions.Load(),
		Subscriptions: st.Subscriptions.Load(), Retained: st.Retained.Load(),
		MessagesIn: st.MessagesIn(), MessagesOut: st.MessagesOut(),
		BytesIn: st.BytesIn.Load(), BytesOut: st.BytesOut.Load(),
		Dropped:    st.DroppedQueue.Load() + st.DroppedTooLarge.Load() + st.DroppedExpired.Load(),
		Goroutines: runtime.NumGoroutine(), ActorRestarts: restarts, RouterShards: cfg.Router.Shards,
		Listeners:      s.b.Listeners(),
		ConsoleVersion: "v1",
	})
}

func (s *Server) actors(w http.ResponseWriter, r *http.Request) {
	list := s.b.Actors()
	writeJSON(w, http.StatusOK, map[string]any{"count": len(list), "actors": list})
}

func (s *Server) actor(w http.ResponseWriter, r *http.Request) {
	id := pathID(r, "id")
	for _, a := range s.b.Actors() {
		if a.ID == id {
			writeJSON(w, http.StatusOK, a)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no actor "+strconv.Quote(id))
}

func (s *Server) kill(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(pathID(r, "rest"), "/kill")
	if !ok {
		writeError(w, http.StatusNotFound, "POST /api/v1/actors/{id}/kill is the only write on actors")
		return
	}
	mode := r.URL.Query().Get("mode")
	if mode == "" {
		mode = "stop"
	}
	if err := s.b.Kill(id, mode); err != nil {
		writeBackendError(w, err)
		return
	}
	s.log.Warn("console: actor killed", zap.String("actor", id), zap.String("mode", mode), zap.String("from", r.RemoteAddr))
	writeJSON(w, http.StatusAccepted, map[string]string{"actor": id, "mode": mode, "status": "sent"})
}

func (s *Server) clients(w http.ResponseWriter, r *http.Request) {
	list := s.b.Clients()
	writeJSON(w, http.StatusOK, map[string]any{"count": len(list), "clients": list})
}

func (s *Server) client(w http.ResponseWriter, r *http.Request) {
	id := pathID(r, "id")
	c, ok := s.b.Client(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no client "+strconv.Quote(id))
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) disconnect(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(pathID(r, "rest"), "/disconnect")
	if !ok {
		writeError(w, http.StatusNotFound, "POST /api/v1/clients/{id}/disconnect is the only write on clients")
		return
	}
	if err := s.b.Disconnect(id); err != nil {
		writeBackendError(w, err)
		return
	}
	s.log.Warn("console: client disconnected", zap.String("client", id), zap.String("from", r.RemoteAddr))
	writeJSON(w, http.StatusAccepted, map[string]string{"client_id": id, "status": "sent"})
}

// Subscriber is one client's subscription to a filter.
type Subscriber struct {
	ClientID  string `json:"client_id"`
	Connected bool   `json:"connected"`
	actors.SubView
}

// FilterSubscribers is one filter and who subscribes to it.
type FilterSubscribers struct {
	Filter      string       `json:"filter"`
	Subscribers []Subscriber `json:"subscribers"`
}

func (s *Server) subscriptions(w http.ResponseWriter, r *http.Request) {
	byFilter := map[string][]Subscriber{}
	for _, c := range s.b.Clients() {
		for _, sub := range c.Subscriptions {
			byFilter[sub.Filter] = append(byFilter[sub.Filter], Subscriber{ClientID: c.ClientID, Connected: c.Connected, SubView: sub})
		}
	}
	out := make([]FilterSubscribers, 0, len(byFilter))
	for f, subs := range byFilter {
		out = append(out, FilterSubscribers{Filter: f, Subscribers: subs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Filter < out[j].Filter })
	writeJSON(w, http.StatusOK, map[string]any{"count": len(out), "subscriptions": out})
}

func (s *Server) retained(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filter := q.Get("filter")
	if filter != "" {
		cfg := s.b.Config()
		if err := topics.ValidateFilter(filter, cfg.Limits.MaxTopicLength, cfg.Limits.MaxTopicLevels); err != nil {
			writeError(w, http.StatusBadRequest, "filter: "+err.Error())
			return
		}
	}
	limit, err1 := intParam(q, "limit", 100, 1, 10000)
	offset, err2 := intParam(q, "offset", 0, 0, 1<<31)
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), askTimeout)
	defer cancel()
	all, err := s.b.Retained(ctx, filter)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	page := all[min(offset, len(all)):min(offset+limit, len(all))]
	if page == nil {
		page = []actors.RetainedView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": len(all), "offset": offset, "limit": limit, "messages": page})
}

func (s *Server) router(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), askTimeout)
	defer cancel()
	writeJSON(w, http.StatusOK, map[string]any{"shards": s.b.Router(ctx)})
}

// config serves the effective configuration under the TOML key names, secrets redacted.
func (s *Server) config(w http.ResponseWriter, r *http.Request) {
	b, err := toml.Marshal(s.b.Config())
	var m map[string]any
	if err == nil {
		err = toml.Unmarshal(b, &m)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "config: "+err.Error())
		return
	}
	redact(m)
	writeJSON(w, http.StatusOK, m)
}

// redact hides values of keys that name a secret, at any depth, so that keys added later
// (passwords of the auth section, say) are covered without the console knowing them.
func redact(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			lk := strings.ToLower(k)
			if s, ok := x.(string); ok && s != "" &&
				(strings.Contains(lk, "token") || strings.Contains(lk, "password") || strings.Contains(lk, "secret")) {
				t[k] = "<redacted>"
				continue
			}
			redact(x)
		}
	case []any:
		for _, x := range t {
			redact(x)
		}
	}
}

// write guards the endpoints that change the broker: chaos must be on, the token (if any)
// must be given, and a browser page from another origin must not be able to post here.
func (s *Server) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cfg := s.b.Config().Console
		if !cfg.Chaos {
			writeError(w, http.StatusForbidden, "chaos is off: set console.chaos = true to kill actors or disconnect clients")
			return
		}
		if !s.tokenOK(w, r) {
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			if u, err := url.Parse(o); err != nil || u.Host != r.Host {
				writeError(w, http.StatusForbidden, "cross-origin request refused")
				return
			}
		}
		h(w, r)
	}
}

// tokenOK checks console.token when one is set, answering 401 when it is missing or wrong.
func (s *Server) tokenOK(w http.ResponseWriter, r *http.Request) bool {
	token := s.b.Config().Console.Token
	if token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="actormq console"`)
		writeError(w, http.StatusUnauthorized, "this console needs Authorization: Bearer <console.token>")
		return false
	}
	return true
}

// private guards what shows the broker's insides (profiles): the token, when one is set.
func (s *Server) private(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.tokenOK(w, r) {
			h(w, r)
		}
	}
}

// pathID is an id taken from the rest of the path. Ids hold '/' and '#': clients send them
// escaped as one segment (%2F, %23) or '/' as is; the mux unescapes both the same way.
func pathID(r *http.Request, name string) string { return r.PathValue(name) }

func intParam(q url.Values, key string, def, lo, hi int) (int, error) {
	s := q.Get(key)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, errors.New(key + " must be a whole number from " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi))
	}
	return n, nil
}

func writeBackendError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	writeError(w, code, err.Error())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
