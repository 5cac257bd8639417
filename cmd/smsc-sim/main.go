// Command smsc-sim runs the UCP SMSC simulator of package smscsim: UCP on
// -addr, and on -http-addr its HTTP API: GET /stats, GET /submits,
// GET /metrics (Prometheus), GET and PUT /faults (fault injection: NACK
// storms, lost ACKs, garbage frames, delays), POST /drop (close every
// connection now) and POST /mo (inject an MO). -h lists the endpoints and
// the flags, each also read from SMSC_SIM_<FLAG> then <FLAG>.
package main

import (
	"context"
	_ "time/tzdata" // -timezone works on images without a zoneinfo database

	"pushsms.io/lib/config"
	"pushsms.io/lib/smscsim"
)

func main() {
	cmd := smscsim.DefaultCommand()
	config.Main("smsc-sim", &cmd, func(ctx context.Context) error { return cmd.Run(ctx) })
}
