// Command ingest serves the partner gRPC API and the messages' status view;
// -h lists its flags and environment.
package main

import (
	"context"

	"pushsms.io/lib/config"
	"pushsms.io/services/ingest"
)

func main() {
	cfg := ingest.DefaultConfig()
	config.Main("ingest", &cfg, func(ctx context.Context) error { return ingest.Run(ctx, cfg) })
}
