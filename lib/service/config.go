package service

import (
	"errors"
	"flag"
	"fmt"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/telemetry"
)

// Config is the part of every service's configuration that Open needs.
// Services embed it, so its fields read as their own (cfg.Bus, cfg.GRPCAddr).
type Config struct {
	Bus       bus.Config
	Telemetry telemetry.Config
	// GRPCAddr serves health and reflection, and the service's own APIs.
	GRPCAddr string
}

// DefaultConfig is a local bus, JSON logs and gRPC on grpcAddr.
func DefaultConfig(grpcAddr string) Config {
	return Config{Bus: bus.DefaultConfig(), Telemetry: telemetry.DefaultConfig(), GRPCAddr: grpcAddr}
}

// RegisterFlags adds the bus, telemetry and -grpc-addr flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Bus.RegisterFlags(fs)
	c.Telemetry.RegisterFlags(fs)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address: health, reflection and the service's API")
}

// Validate checks the common part of a configuration.
func (c Config) Validate() error {
	var errs []error
	if err := c.Bus.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Telemetry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("grpc-addr is empty"))
	}
	return errors.Join(errs...)
}

// ValidateWorkers checks a -workers value.
func ValidateWorkers(n, most int) error {
	if n < 1 || n > most {
		return fmt.Errorf("workers %d: want 1 to %d", n, most)
	}
	return nil
}
