// Command smsc-link submits segments to the operator's SMSC over UCP and
// reports what the SMSC says; -h lists its flags and environment.
package main

import (
	"context"

	"pushsms.io/lib/config"
	smsclink "pushsms.io/services/smsc-link"
)

func main() {
	cfg := smsclink.DefaultConfig()
	config.Main("smsc-link", &cfg, func(ctx context.Context) error { return smsclink.Run(ctx, cfg) })
}
