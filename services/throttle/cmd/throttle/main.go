// Command throttle paces each short code's SMS-MTs to its subscribed rate;
// -h lists its flags and environment.
package main

import (
	"context"

	"pushsms.io/lib/config"
	"pushsms.io/services/throttle"
)

func main() {
	cfg := throttle.DefaultConfig()
	config.Main("throttle", &cfg, func(ctx context.Context) error { return throttle.Run(ctx, cfg) })
}
