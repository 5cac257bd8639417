package smsclink

import "crypto/tls"

// TLSConfigForTest exposes the TLS configuration built from the flags.
func TLSConfigForTest(c Config) (*tls.Config, error) { return c.tlsConfig() }

// AttemptKeyForTest is the bucket key of a segment's submission attempt.
func AttemptKeyForTest(messageID string, index int32) string { return attemptKey(messageID, index) }
