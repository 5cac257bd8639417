package ported

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/fault"
	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
)

const (
	// MaxBatch bounds the entries of one batch message, so that a batch
	// stays far below gRPC's 4 MB message limit.
	MaxBatch = 50_000
	// maxErrors is how many refusals an import reports one by one.
	maxErrors = 100
	// maxSource bounds the spec's source, kept with the version.
	maxSource = 256
)

// Server is the admin PortedNumbersService: the aggregator's imports of
// portability files. It is for operators of the platform, not partners,
// and has no authentication of its own: it must only be reachable inside
// the cluster.
type Server struct {
	adminv1.UnimplementedPortedNumbersServiceServer
	pool *pgxpool.Pool
	log  *slog.Logger
}

// NewServer returns the service, importing into pool (migrated with
// Schema and Migrations).
func NewServer(pool *pgxpool.Pool, log *slog.Logger) *Server {
	return &Server{pool: pool, log: log}
}

// Register registers the service on a gRPC server.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	adminv1.RegisterPortedNumbersServiceServer(r, s)
}

// ImportPortedNumbers stages every valid entry of the stream in a
// temporary table of one transaction and applies them when the stream
// ends, in that transaction: a stream that fails or is cancelled changes
// nothing. A full import replaces the table, an incremental one upserts
// entries and deletes those without an operator. Both make a new version,
// which the replicas load on the commit's notification.
func (s *Server) ImportPortedNumbers(stream grpc.ClientStreamingServer[adminv1.ImportPortedNumbersRequest, adminv1.ImportPortedNumbersResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("ported: import: %w", err)
	}
	spec := first.GetSpec()
	if spec == nil {
		return fault.Invalidf("spec", "the stream must start with the import spec")
	}
	var mode string
	switch spec.GetMode() {
	case adminv1.ImportMode_IMPORT_MODE_FULL:
		mode = "full"
	case adminv1.ImportMode_IMPORT_MODE_INCREMENTAL:
		mode = "incremental"
	default:
		return fault.Invalidf("spec.mode", "must be IMPORT_MODE_FULL or IMPORT_MODE_INCREMENTAL")
	}
	if len(spec.GetSource()) > maxSource {
		return fault.Invalidf("spec.source", "longer than %d bytes", maxSource)
	}
	start := time.Now()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%w: ported: import: %v", fault.ErrUnavailable, err)
	}
	// Rolled back on every early return: the staging table goes with it.
	defer tx.Rollback(context.WithoutCancel(ctx))
	// A client that stops sending without closing its stream (a laptop
	// put to sleep) must not hold a connection and a transaction for
	// hours: PostgreSQL ends the session, and the import with it.
	if _, err := tx.Exec(ctx, `SET LOCAL idle_in_transaction_session_timeout = '10min'`); err != nil {
		return fmt.Errorf("ported: import: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE staging (pos bigint NOT NULL, msisdn bigint NOT NULL, operator text NOT NULL) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("ported: import: staging: %w", err)
	}
	resp := &adminv1.ImportPortedNumbersResponse{}
	var pos int64
	rows := make([][]any, 0, 1024)
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("ported: import: %w", err)
		}
		batch := req.GetBatch()
		if batch == nil {
			return fault.Invalidf("batch", "only the first message of the stream is a spec")
		}
		if len(batch.GetEntries()) > MaxBatch {
			return fault.Invalidf("batch.entries", "%d entries, at most %d a batch", len(batch.GetEntries()), MaxBatch)
		}
		rows = rows[:0]
		for _, e := range batch.GetEntries() {
			entry, err := ParseEntry(e.GetMsisdn(), e.GetOperator())
			if err == nil && entry.Operator == "" && mode == "full" {
				err = ErrNoOperator
			}
			if err != nil {
				resp.Refused++
				if len(resp.Errors) < maxErrors {
					resp.Errors = append(resp.Errors, &adminv1.EntryError{Position: pos, Detail: err.Error()})
				}
			} else {
				rows = append(rows, []any{pos, int64(entry.Key), entry.Operator})
			}
			pos++
		}
		if len(rows) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"staging"}, []string{"pos", "msisdn", "operator"}, pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("ported: import: copy: %w", err)
			}
		}
	}
	if mode == "full" && pos-resp.Refused == 0 {
		return fault.Invalidf("batch.entries", "a full import without a valid entry would empty the table (%d refused)", resp.Refused)
	}
	if err := apply(ctx, tx, mode, spec.GetSource(), resp); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("ported: import: commit: %w", err)
	}
	s.log.InfoContext(ctx, "ported numbers imported", "mode", mode, "version", resp.Version, "entries", pos,
		"upserted", resp.Upserted, "deleted", resp.Deleted, "refused", resp.Refused, "size", resp.Size,
		"took", time.Since(start).Round(time.Millisecond))
	return stream.SendAndClose(resp)
}

// applyLock is the advisory lock that serialises the apply step of
// concurrent imports, so versions follow the order of the changes ("ported"
// in ASCII).
const applyLock int64 = 0x706f72746564

// apply moves the staged entries into the table, records the version and
// notifies the replicas (delivered at commit). When a number appears more
// than once, its last entry wins.
func apply(ctx context.Context, tx pgx.Tx, mode, source string, resp *adminv1.ImportPortedNumbersResponse) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, applyLock); err != nil {
		return fmt.Errorf("ported: import: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `ANALYZE staging`); err != nil {
		return fmt.Errorf("ported: import: analyze: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		CREATE TEMPORARY TABLE latest ON COMMIT DROP AS
		SELECT DISTINCT ON (msisdn) msisdn, operator FROM staging ORDER BY msisdn, pos DESC`); err != nil {
		return fmt.Errorf("ported: import: dedupe: %w", err)
	}
	switch mode {
	case "full":
		if err := tx.QueryRow(ctx, `
			SELECT count(*) FROM `+Schema+`.numbers n
			WHERE NOT EXISTS (SELECT 1 FROM latest l WHERE l.msisdn = n.msisdn)`).Scan(&resp.Deleted); err != nil {
			return fmt.Errorf("ported: import: count deletions: %w", err)
		}
		// TRUNCATE, not DELETE: no million dead rows to vacuum. Its lock
		// holds the replicas' reloads until commit (see readSnapshot).
		if _, err := tx.Exec(ctx, `TRUNCATE `+Schema+`.numbers`); err != nil {
			return fmt.Errorf("ported: import: truncate: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO `+Schema+`.numbers (msisdn, operator) SELECT msisdn, operator FROM latest`)
		if err != nil {
			return fmt.Errorf("ported: import: insert: %w", err)
		}
		resp.Upserted = tag.RowsAffected()
	case "incremental":
		tag, err := tx.Exec(ctx, `
			DELETE FROM `+Schema+`.numbers n USING latest l
			WHERE l.msisdn = n.msisdn AND l.operator = ''`)
		if err != nil {
			return fmt.Errorf("ported: import: delete: %w", err)
		}
		resp.Deleted = tag.RowsAffected()
		// Unchanged entries are not rewritten, nor counted.
		tag, err = tx.Exec(ctx, `
			INSERT INTO `+Schema+`.numbers AS n (msisdn, operator)
			SELECT msisdn, operator FROM latest WHERE operator <> ''
			ON CONFLICT (msisdn) DO UPDATE SET operator = excluded.operator, updated_at = now()
			WHERE n.operator <> excluded.operator`)
		if err != nil {
			return fmt.Errorf("ported: import: upsert: %w", err)
		}
		resp.Upserted = tag.RowsAffected()
	}
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+Schema+`.numbers`).Scan(&resp.Size); err != nil {
		return fmt.Errorf("ported: import: size: %w", err)
	}
	if err := tx.QueryRow(ctx, `
		INSERT INTO `+Schema+`.versions (version, mode, source, size, upserted, deleted, refused)
		SELECT coalesce(max(version), 0) + 1, $1, $2, $3, $4, $5, $6 FROM `+Schema+`.versions
		RETURNING version`,
		mode, source, resp.Size, resp.Upserted, resp.Deleted, resp.Refused).Scan(&resp.Version); err != nil {
		return fmt.Errorf("ported: import: version: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, strconv.FormatInt(resp.Version, 10)); err != nil {
		return fmt.Errorf("ported: import: notify: %w", err)
	}
	return nil
}

// GetPortedNumbers tells the version, size and source of the table.
func (s *Server) GetPortedNumbers(ctx context.Context, _ *adminv1.GetPortedNumbersRequest) (*adminv1.GetPortedNumbersResponse, error) {
	var (
		resp adminv1.GetPortedNumbersResponse
		at   time.Time
	)
	err := s.pool.QueryRow(ctx, `
		SELECT version, size, source, imported_at FROM `+Schema+`.versions
		ORDER BY version DESC LIMIT 1`).Scan(&resp.Version, &resp.Size, &resp.Source, &at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return &resp, nil // never imported: version 0, empty
	case err != nil:
		return nil, fmt.Errorf("ported: status: %w", err)
	}
	resp.ImportedAt = timestamppb.New(at)
	return &resp, nil
}
