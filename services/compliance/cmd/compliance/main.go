// Command compliance checks accepted messages against the rules and clears or rejects them; -h lists its flags and environment.
package main

import (
	"context"

	"pushsms.io/lib/config"
	"pushsms.io/services/compliance"
)

func main() {
	cfg := compliance.DefaultConfig()
	config.Main("compliance", &cfg, func(ctx context.Context) error { return compliance.Run(ctx, cfg) })
}
