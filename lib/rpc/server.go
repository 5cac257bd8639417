// Package rpc is the gRPC server every service uses: OpenTelemetry stats
// handler, health and reflection (so grpcurl works), and the one mapping
// from error kinds to status codes, applied by interceptors so that
// handlers just return their error.
package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"pushsms.io/lib/telemetry"
)

// Server is a listening gRPC server.
type Server struct {
	*grpc.Server
	Health *health.Server
	lis    net.Listener
	log    *slog.Logger
}

// Options are a server's interceptors and exposure.
type Options struct {
	// Unary and Stream run after error mapping is set up (e.g.
	// authentication), so their errors are mapped too.
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// Public: the callers are outside the platform (partners). Their trace
	// context is linked, not followed: a call starts a trace of ours,
	// sampled at our ratio, so that a caller can neither have every
	// message traced nor choose our trace ids.
	Public bool
}

// Listen binds addr ("127.0.0.1:0" picks a port) and builds the server.
func Listen(addr string, tel *telemetry.Telemetry, o Options, opts ...grpc.ServerOption) (*Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &Server{Health: health.NewServer(), lis: lis, log: tel.Logger}
	opts = append(opts,
		grpc.StatsHandler(statsHandler(tel, o.Public)),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{s.unaryStatus}, o.Unary...)...),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{s.streamStatus}, o.Stream...)...),
	)
	s.Server = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s.Server, s.Health)
	reflection.Register(s.Server)
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Serve serves until Stop.
func (s *Server) Serve() error {
	if err := s.Server.Serve(s.lis); err != nil && err != grpc.ErrServerStopped {
		return err
	}
	return nil
}

// Stop lets calls in flight finish for up to d, then cuts them.
func (s *Server) Stop(d time.Duration) {
	s.Health.Shutdown()
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		s.Server.Stop()
	}
	// Serve closes the listener it was given; one never served is closed
	// here so that its port is free again.
	_ = s.lis.Close()
}

func (s *Server) unaryStatus(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		return nil, s.mapErr(ctx, info.FullMethod, err)
	}
	return resp, nil
}

func (s *Server) streamStatus(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := h(srv, ss); err != nil {
		return s.mapErr(ss.Context(), info.FullMethod, err)
	}
	return nil
}

func (s *Server) mapErr(ctx context.Context, method string, err error) error {
	st := Status(err)
	if st.Code() == codes.Internal {
		s.log.ErrorContext(ctx, "internal error", "method", method, "err", err)
	}
	return st.Err()
}
