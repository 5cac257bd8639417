package smsclink

import "crypto/tls"

// TLSConfigForTest exposes the TLS configuration built from the flags.
func TLSConfigForTest(c Config) (*tls.Config, error) { return c.tlsConfig() }
