package tests

import (
	"github.com/actormq/actormq/internal/brokertest"
)

// The harness lives in internal/brokertest, shared with tests/chaos and tests/hostile; these
// short names keep the suite readable.
type (
	testBroker = brokertest.Broker
	rawClient  = brokertest.Conn
)

var (
	startBroker = brokertest.Start
	waitFor     = brokertest.WaitFor
	dialRaw     = brokertest.Dial
	tryDialRaw  = brokertest.TryDial
	connectsNow = brokertest.ConnectsNow
	needProgram = brokertest.NeedProgram
)
