// Package embeddednats runs a NATS server with JetStream inside the process:
// for tests and for the one-machine mode. Production runs a NATS cluster.
package embeddednats

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config of an embedded server.
type Config struct {
	// Dir holds JetStream's files; state survives a restart on the same Dir.
	Dir  string
	Host string
	// Port to listen on; -1 picks a free one.
	Port int
	// MonitorPort serves /varz, /jsz (for lag-based scaling); 0 is off.
	MonitorPort int
	// Logs writes the server's log to stderr.
	Logs bool
}

// Server is a running embedded server.
type Server struct {
	*server.Server
}

// Start starts a server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embeddednats: Dir is empty")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	opts := &server.Options{
		ServerName: "pushsms-embedded",
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		NoSigs:     true,
		NoLog:      !cfg.Logs,
		HTTPHost:   cfg.Host,
		HTTPPort:   cfg.MonitorPort,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if cfg.Logs {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embeddednats: server not ready after 10s")
	}
	return &Server{s}, nil
}

// URL is the client URL of the server.
func (s *Server) URL() string { return s.ClientURL() }

// Stop shuts the server down and waits until it is gone.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}
