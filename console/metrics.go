package console

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/actormq/actormq/actors"
)

// newMetrics serves /metrics from a registry of its own. The broker's collector reads the
// counters the broker keeps anyway (atomics, the directory, the actor probes) at scrape time,
// so metrics add nothing to the publish path.
func newMetrics(b Backend) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&brokerCollector{b: b},
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("actormq_"+name, help, labels, nil)
}

var (
	descConnOpen      = desc("connections_open", "Open network connections, CONNECT done or not.")
	descConnections   = desc("connections", "Connected clients by listener and protocol.", "listener", "protocol")
	descConnects      = desc("connects_total", "Accepted CONNECTs.")
	descDisconnects   = desc("disconnects_total", "Ends of connected clients by reason.", "reason")
	descMsgsIn        = desc("messages_received_total", "PUBLISH packets received from clients.", "qos")
	descMsgsOut       = desc("messages_sent_total", "PUBLISH packets sent to clients.", "qos")
	descBytesIn       = desc("bytes_received_total", "Bytes read from client sockets.")
	descBytesOut      = desc("bytes_sent_total", "Bytes written to client sockets.")
	descDropped       = desc("messages_dropped_total", "Messages dropped instead of delivered, by reason.", "reason")
	descSlowClosed    = desc("slow_consumers_closed_total", "Connections closed for not reading their acknowledgements.")
	descRetained      = desc("retained_messages", "Retained messages stored.")
	descSessions      = desc("sessions", "Sessions, connected or not.")
	descSubscriptions = desc("subscriptions", "Subscriptions of all sessions.")
	descInflight      = desc("inflight_messages", "QoS 1/2 messages sent and not yet acknowledged, all sessions.")
	descQueued        = desc("queued_messages", "Messages waiting in session queues, all sessions.")
	descActors        = desc("actors", "Live actors by kind.", "kind")
	descMailbox       = desc("mailbox_depth", "Messages waiting in actor mailboxes, summed by actor kind.", "kind")
	descMailboxMax    = desc("mailbox_depth_max", "The deepest actor mailbox of each kind.", "kind")
	descRestarts      = desc("actor_restarts_total", "Actor restarts by their supervisor, by kind.", "kind")
	descParked        = desc("parked_workers", "Goroutines parked for the next actor, reader or writer turn "+
		"(counted in go_goroutines; each ends after a second unused).")
)

type brokerCollector struct{ b Backend }

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnOpen, descConnections, descConnects, descDisconnects,
		descMsgsIn, descMsgsOut, descBytesIn, descBytesOut, descDropped, descSlowClosed, descRetained, descSessions,
		descSubscriptions, descInflight, descQueued, descActors, descMailbox, descMailboxMax, descRestarts, descParked} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.b.Stats()
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	gauge(descConnOpen, float64(st.Connections.Load()))
	gauge(descRetained, float64(st.Retained.Load()))
	gauge(descSessions, float64(st.Sessions.Load()))
	gauge(descSubscriptions, float64(st.Subscriptions.Load()))
	counter(descBytesIn, float64(st.BytesIn.Load()))
	counter(descBytesOut, float64(st.BytesOut.Load()))
	for q := range 3 {
		counter(descMsgsIn, float64(st.MessagesInQoS[q].Load()), strconv.Itoa(q))
		counter(descMsgsOut, float64(st.MessagesOutQoS[q].Load()), strconv.Itoa(q))
	}
	counter(descDropped, float64(st.DroppedQueue.Load()), "queue_full")
	counter(descDropped, float64(st.DroppedTooLarge.Load()), "too_large")
	counter(descDropped, float64(st.DroppedExpired.Load()), "expired")
	counter(descSlowClosed, float64(st.SlowConsumersClosed.Load()))

	if d := c.b.Directory(); d != nil {
		counter(descConnects, float64(d.Connects()))
		for reason, n := range d.Disconnects() {
			counter(descDisconnects, float64(n), reason)
		}
	}
	t := c.b.Totals()
	for k, n := range t.Connected {
		gauge(descConnections, float64(n), k.Listener, k.Protocol)
	}
	gauge(descInflight, float64(t.Inflight))
	gauge(descQueued, float64(t.Queued))

	count, depth, deepest := map[string]int{}, map[string]int64{}, map[string]int64{}
	for _, a := range c.b.Actors() {
		count[a.Kind]++
		depth[a.Kind] += a.MailboxDepth
		deepest[a.Kind] = max(deepest[a.Kind], a.MailboxDepth)
	}
	for kind, n := range count {
		gauge(descActors, float64(n), kind)
		gauge(descMailbox, float64(depth[kind]), kind)
		gauge(descMailboxMax, float64(deepest[kind]), kind)
	}
	for kind, n := range c.b.RestartsByKind() {
		counter(descRestarts, float64(n), kind)
	}
	gauge(descParked, float64(actors.ParkedWorkers()))
}
