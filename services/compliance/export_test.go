package compliance

import "time"

// SetClock replaces the service's clock; call it before Serve.
func SetClock(s *Service, now func() time.Time) { s.now = now }
