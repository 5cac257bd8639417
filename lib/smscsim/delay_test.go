package smscsim

import (
	"testing"
	"time"
)

func TestDRDelayDistributions(t *testing.T) {
	const draws = 20000
	ms := time.Millisecond
	tests := []struct {
		name     string
		dr       DRConfig
		min, max time.Duration
		mean     time.Duration // checked to ±10 % when non-zero
	}{
		{"fixed", DRConfig{Delay: 5 * ms}, 5 * ms, 5 * ms, 5 * ms},
		{"uniform", DRConfig{Delay: 10 * ms, DelayDist: DelayUniform, DelayMax: 30 * ms}, 10 * ms, 30 * ms, 20 * ms},
		{"uniform degenerate", DRConfig{Delay: 10 * ms, DelayDist: DelayUniform, DelayMax: 10 * ms}, 10 * ms, 10 * ms, 10 * ms},
		{"exp", DRConfig{Delay: 100 * ms, DelayDist: DelayExp}, 0, time.Hour, 100 * ms},
		{"exp capped", DRConfig{Delay: 100 * ms, DelayDist: DelayExp, DelayMax: 150 * ms}, 0, 150 * ms, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.dr.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			s := New(Config{DR: tt.dr, Seed: 1})
			var sum time.Duration
			for range draws {
				d := s.drDelayLocked()
				if d < tt.min || d > tt.max {
					t.Fatalf("got %v, want within [%v, %v]", d, tt.min, tt.max)
				}
				sum += d
			}
			mean := sum / draws
			if tt.mean != 0 && (mean < tt.mean*9/10 || mean > tt.mean*11/10) {
				t.Errorf("got mean %v, want about %v", mean, tt.mean)
			}
		})
	}
}

func TestDRConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		dr   DRConfig
		ok   bool
	}{
		{"defaults", DRConfig{}, true},
		{"uniform", DRConfig{Delay: 1, DelayDist: DelayUniform, DelayMax: 2}, true},
		{"uniform max below min", DRConfig{Delay: 2, DelayDist: DelayUniform, DelayMax: 1}, false},
		{"unknown distribution", DRConfig{DelayDist: "normal"}, false},
		{"negative delay", DRConfig{Delay: -1}, false},
		{"buffered above 1", DRConfig{Buffered: 1.5}, false},
		{"negative weight", DRConfig{Failed: -1}, false},
	}
	for _, tt := range tests {
		if err := tt.dr.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: got %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
