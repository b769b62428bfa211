// Package hostile is the bad-input suite: each test starts a real broker on free ports
// (internal/brokertest) and attacks it over real sockets with what a broken or malicious client
// sends: the codec's fuzz corpora and random bytes, malformed and out-of-order packets,
// slowloris sockets, slow consumers and floods. Every test checks that the broker answers as
// the MQTT 3.1.1 and 5.0 specifications say, that only the offending connection is affected (a
// bystander client keeps publishing to itself throughout), that it logs the case at INFO or
// WARN, that no actor failed and that nothing is left behind.
package hostile
