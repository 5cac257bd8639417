package pgdb

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestRedact(t *testing.T) {
	const phone = "+33612345678"
	syntax := &pgconn.PgError{Severity: "ERROR", Code: "22P02", Message: `invalid input syntax for type bigint: "` + phone + `"`}
	unique := &pgconn.PgError{Severity: "ERROR", Code: "23505", Message: `duplicate key value violates unique constraint "m_msisdn_key"`,
		Detail: "Key (msisdn)=(" + phone + ") already exists.", ConstraintName: "m_msisdn_key", TableName: "m"}
	tests := []struct {
		name     string
		err      error
		want     string // the redacted text, "" for nil
		wantCode string // SQLSTATE kept, if any
		same     bool   // passed through unchanged
	}{
		{name: "nil"},
		{name: "no rows", err: pgx.ErrNoRows, want: pgx.ErrNoRows.Error(), same: true},
		{name: "canceled", err: fmt.Errorf("query: %w", context.Canceled), want: "query: context canceled", same: true},
		{name: "data exception", err: syntax, want: "ERROR: data exception (message withheld: it may quote a query argument) (SQLSTATE 22P02)", wantCode: "22P02"},
		{name: "unique", err: unique, want: `ERROR: duplicate key value violates unique constraint "m_msisdn_key" (SQLSTATE 23505)`, wantCode: "23505"},
		{name: "encode", err: fmt.Errorf("failed to encode args[0]: unable to encode %q", phone), want: withheldError{}.Error()},
		{name: "conn closed", err: fmt.Errorf("read: %w", pgconn.ErrConnClosed), want: "read: conn closed", same: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redact(tt.err)
			if tt.err == nil {
				if got != nil {
					t.Errorf("redact(nil) = %v, want nil", got)
				}
				return
			}
			if got.Error() != tt.want {
				t.Errorf("redact: got %q, want %q", got, tt.want)
			}
			if strings.Contains(fmt.Sprintf("%+v", got), phone) {
				t.Errorf("redact: %+v holds the phone number", got)
			}
			if tt.same && got != tt.err {
				t.Errorf("redact: got %v, want the error unchanged", got)
			}
			var pgErr *pgconn.PgError
			if tt.wantCode != "" && (!errors.As(got, &pgErr) || pgErr.Code != tt.wantCode || pgErr.Detail != "") {
				t.Errorf("redact: got %#v, want a PgError %s without detail", got, tt.wantCode)
			}
		})
	}
}

func TestRegisterFlags(t *testing.T) {
	tests := []struct {
		args    []string
		preset  int32
		want    Config
		wantErr bool
	}{
		{args: nil, want: Config{MaxConns: 10}},
		{args: nil, preset: 20, want: Config{MaxConns: 20}},
		{args: []string{"-database-url", "postgres://db/x", "-database-max-conns", "5"}, want: Config{URL: "postgres://db/x", MaxConns: 5}},
		{args: []string{"-database-max-conns", "-1"}, wantErr: true},
		{args: []string{"-database-max-conns", "3000000000"}, wantErr: true},
	}
	for _, tt := range tests {
		cfg := Config{MaxConns: tt.preset}
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		cfg.RegisterFlags(fs)
		err := fs.Parse(tt.args)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%q: got no error", tt.args)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if cfg != tt.want {
			t.Errorf("%q: got %+v, want %+v", tt.args, cfg, tt.want)
		}
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), true},
		{&pgconn.PgError{Code: "57P03"}, true}, // the database system is starting up
		{&pgconn.PgError{Code: "53300"}, true}, // too many connections
		{&pgconn.PgError{Code: "28P01"}, false},
		{&pgconn.PgError{Code: "3D000"}, false},
	}
	for _, tt := range tests {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
