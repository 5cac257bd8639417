// Command billing records final delivery reports in the ledger; -h lists its flags and environment.
package main

import (
	"context"

	"pushsms.io/lib/config"
	"pushsms.io/services/billing"
)

func main() {
	cfg := billing.DefaultConfig()
	config.Main("billing", &cfg, func(ctx context.Context) error { return billing.Run(ctx, cfg) })
}
