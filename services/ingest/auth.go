package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"pushsms.io/lib/fault"
)

// APIKeyPrefix starts every partner API key, so that a leaked key is
// recognisable (secret scanners, logs).
const APIKeyPrefix = "psk_"

var (
	partnerIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	shortCodePattern = regexp.MustCompile(`^[0-9]{5}$`)
)

// CreatePartner records a partner (tenant) with the short codes it may send
// from, and returns its new API key. Only the key's SHA-256 is stored: the
// key is shown once, here. id is a slug (lower-case letters, digits, '-',
// '_'), since it is a token of the bus subjects.
func CreatePartner(ctx context.Context, pool *pgxpool.Pool, id, name string, shortCodes []string) (apiKey string, err error) {
	var errs []error
	if !partnerIDPattern.MatchString(id) {
		errs = append(errs, fault.Invalidf("id", "must be 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit"))
	}
	if strings.TrimSpace(name) == "" {
		errs = append(errs, fault.Invalidf("name", "must not be empty"))
	}
	for _, sc := range shortCodes {
		if !shortCodePattern.MatchString(sc) {
			errs = append(errs, fault.Invalidf("short_codes", "%q is not a 5-digit short code", sc))
		}
	}
	if err := fault.Join(errs...); err != nil {
		return "", err
	}

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("api key: %w", err)
	}
	apiKey = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(secret)
	hash := keyHash(apiKey)

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO ingest.partners (id, name, api_key_sha256) VALUES ($1, $2, $3)`, id, name, hash[:]); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("partner %s: %w", id, fault.ErrExists)
			}
			return err
		}
		for _, sc := range shortCodes {
			if _, err := tx.Exec(ctx, `INSERT INTO ingest.partner_short_codes (partner_id, short_code) VALUES ($1, $2) ON CONFLICT DO NOTHING`, id, sc); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("create partner %s: %w", id, err)
	}
	return apiKey, nil
}

func keyHash(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// tenantFrom returns the calling partner's id, from the grant the
// authenticator put in the call's context.
func tenantFrom(ctx context.Context) (string, error) {
	g, ok := ctx.Value(grantKey{}).(grant)
	id := g.tenant
	if !ok || id == "" {
		// A method reached without authentication: a wiring bug, not the caller's.
		return "", errors.New("ingest: no tenant in context")
	}
	return id, nil
}

// authenticator checks the partner API key of every call but those of
// health and reflection.
type authenticator struct {
	pool *pgxpool.Pool
	// now is the clock of the grants' age (time.Now when nil).
	now func() time.Time

	mu     sync.Mutex
	grants map[[32]byte]grant // by key hash
}

// grantTTL is how long a key's partner and short codes are taken from
// memory rather than the database: two round trips of every SendMessage
// (the key, then the short code) when a partner sends hundreds a second.
// A key removed, or a short code taken back, stops working within it; a
// short code just given works at once (a miss asks the database).
const grantTTL = 5 * time.Second

// maxGrants bounds the cache: an aggregator has hundreds of partners.
const maxGrants = 10_000

// grant is what a key gives: its partner and the partner's short codes.
type grant struct {
	tenant     string
	shortCodes []string // sorted
	at         time.Time
}

// grantKey carries the call's grant (its partner, its short codes) in its
// context.
type grantKey struct{}

func (a *authenticator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if public(info.FullMethod) {
		return h(ctx, req)
	}
	ctx, err := a.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if public(info.FullMethod) {
		return h(srv, ss)
	}
	ctx, err := a.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return h(srv, &tenantStream{ServerStream: ss, ctx: ctx})
}

// public reports the methods any client may call: health checks and
// reflection (grpcurl list).
func public(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

var errNoKey = fmt.Errorf("missing API key: send \"authorization: Bearer <key>\" or \"x-api-key: <key>\": %w", fault.ErrUnauthenticated)
var errBadKey = fmt.Errorf("invalid API key: %w", fault.ErrUnauthenticated)

func (a *authenticator) authenticate(ctx context.Context) (context.Context, error) {
	key := apiKeyFrom(ctx)
	if key == "" {
		return ctx, errNoKey
	}
	if !strings.HasPrefix(key, APIKeyPrefix) || len(key) > 128 {
		return ctx, errBadKey
	}
	g, err := a.grant(ctx, keyHash(key))
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, grantKey{}, g), nil
}

// grant returns the grant of the key whose hash is hash: from memory if it
// is younger than grantTTL, else read in one query.
func (a *authenticator) grant(ctx context.Context, hash [32]byte) (grant, error) {
	now := time.Now
	if a.now != nil {
		now = a.now
	}
	t := now()
	a.mu.Lock()
	g, ok := a.grants[hash]
	a.mu.Unlock()
	if ok && t.Sub(g.at) < grantTTL {
		return g, nil
	}
	err := a.pool.QueryRow(ctx, `SELECT p.id, coalesce(array_agg(s.short_code ORDER BY s.short_code)
			FILTER (WHERE s.short_code IS NOT NULL), '{}')
		FROM ingest.partners p LEFT JOIN ingest.partner_short_codes s ON s.partner_id = p.id
		WHERE p.api_key_sha256 = $1 GROUP BY p.id`, hash[:]).Scan(&g.tenant, &g.shortCodes)
	if errors.Is(err, pgx.ErrNoRows) {
		return g, errBadKey
	}
	if err != nil {
		return g, dbErr("authenticate", err)
	}
	g.at = t
	a.mu.Lock()
	if a.grants == nil || len(a.grants) >= maxGrants {
		a.grants = make(map[[32]byte]grant)
	}
	a.grants[hash] = g
	a.mu.Unlock()
	return g, nil
}

// apiKeyFrom reads "authorization: Bearer <key>", else "x-api-key: <key>".
func apiKeyFrom(ctx context.Context) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ""
	}
	for _, v := range md.Get("authorization") {
		scheme, key, ok := strings.Cut(strings.TrimSpace(v), " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(key)
		}
	}
	for _, v := range md.Get("x-api-key") {
		if k := strings.TrimSpace(v); k != "" {
			return k
		}
	}
	return ""
}

// tenantStream is a server stream whose context carries the tenant.
type tenantStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *tenantStream) Context() context.Context { return s.ctx }

// ownsShortCode reports whether short code sc is assigned to tenant.
func ownsShortCode(ctx context.Context, q querier, tenant, sc string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ingest.partner_short_codes WHERE partner_id = $1 AND short_code = $2)`, tenant, sc).Scan(&ok)
	return ok, err
}

// shortCodes lists the short codes of tenant.
func shortCodes(ctx context.Context, q querier, tenant string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT short_code FROM ingest.partner_short_codes WHERE partner_id = $1 ORDER BY short_code`, tenant)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// checkShortCode refuses a short code the tenant does not own. The call's
// grant answers when it lists it; otherwise the database does, so that a
// short code given a moment ago works at once.
func checkShortCode(ctx context.Context, q querier, tenant, sc string) error {
	if g, ok := ctx.Value(grantKey{}).(grant); ok && g.tenant == tenant {
		if _, found := slices.BinarySearch(g.shortCodes, sc); found {
			return nil
		}
	}
	ok, err := ownsShortCode(ctx, q, tenant, sc)
	if err != nil {
		return dbErr("check short code", err)
	}
	if !ok {
		return fmt.Errorf("short code %s is not assigned to partner %s: %w", sc, tenant, fault.ErrDenied)
	}
	return nil
}
