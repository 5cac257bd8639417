// Command smsc-sim runs the UCP SMSC simulator of package smscsim: UCP on
// -addr, and GET /stats, GET /submits and POST /mo on -http-addr; -h lists
// its flags, each also read from SMSC_SIM_<FLAG> then <FLAG>.
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
