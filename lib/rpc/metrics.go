package rpc

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc/stats"

	"pushsms.io/lib/telemetry"
)

// statsHandler traces every call and measures it into the service's meter
// provider: otelgrpc's semantic-convention histogram rpc.server.call.duration
// is the RED metrics of every service's gRPC API, no counter of our own
// (docs/observability.md). On /metrics:
//
//	rpc_server_call_duration_seconds_{bucket,sum,count}{rpc_method, rpc_response_status_code, error_type, rpc_system_name}
//
// rpc_method is "<package>.<Service>/<Method>" (Kubernetes' probes are
// grpc.health.v1.Health/Check); error_type is set only for the codes a
// server owns as its failure (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
// INTERNAL, UNAVAILABLE, DATA_LOSS), not for a caller's mistake
// (INVALID_ARGUMENT, UNAUTHENTICATED, …), which rpc_response_status_code
// still tells.
//
// A public server starts a trace of its own for every call, linked to the
// caller's (Options.Public).
func statsHandler(tel *telemetry.Telemetry, public bool) stats.Handler {
	opts := []otelgrpc.Option{
		otelgrpc.WithTracerProvider(tel.TracerProvider),
		otelgrpc.WithPropagators(tel.Propagator),
		otelgrpc.WithMeterProvider(tel.MeterProvider),
	}
	if public {
		opts = append(opts, otelgrpc.WithPublicEndpoint())
	}
	return otelgrpc.NewServerHandler(opts...)
}
