package telemetry

import semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

// The semantic-conventions version is pinned here, to the one the SDK's
// resource uses, so that resources merge without a schema conflict.
const SchemaURL = semconv.SchemaURL
