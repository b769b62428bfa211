// Package tests holds the end-to-end tests: each starts a real broker in-process on free
// ports and talks MQTT to it over real sockets with real client libraries
// (github.com/eclipse/paho.golang for 5.0, github.com/eclipse/paho.mqtt.golang for 3.1.1),
// the mosquitto command-line clients, or raw packets written with the project's codec where a
// library cannot express a case (protocol violations).
package tests
