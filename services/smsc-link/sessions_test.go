package smsclink_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"pushsms.io/lib/bus/bustest"
	"pushsms.io/lib/smscsim"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
	smsclink "pushsms.io/services/smsc-link"
)

// TestTwoSessionsBothUsed: with -smsc-sessions 2 both sessions log in and
// the segments of the short code are spread over them; health stays
// SERVING while one of them is up.
func TestTwoSessionsBothUsed(t *testing.T) {
	e := start(t, smscsim.Config{}, func(c *smsclink.Config) { c.Sessions = 2 })
	bustest.Eventually(t, wait, func() error {
		if n := e.sim.Stats().Accounts[shortCode].Sessions; n != 2 {
			return fmt.Errorf("%d sessions logged in at the SMSC, want 2", n)
		}
		if n := e.svc.Stats().LiveSessions[shortCode]; n != 2 {
			return fmt.Errorf("%d live sessions in the service, want 2", n)
		}
		if st := health(t, e.svc.Addr()); st != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %v", st)
		}
		return nil
	})
	const n = 6
	for i := range n {
		e.publish(submitEvent(fmt.Sprintf("0190a8e2-0000-7000-8000-2000000000%02d", i), segments(t, "spread")[0]))
	}
	for i := range n {
		got := e.waitReports(fmt.Sprintf("0190a8e2-0000-7000-8000-2000000000%02d", i), "submitted", "delivered")
		checkReport(t, got["delivered"][0], partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")
	}
	used := e.svc.Stats().SessionSubmits[shortCode]
	if len(used) != 2 || used[0] == 0 || used[1] == 0 || used[0]+used[1] != n {
		t.Errorf("submits per session %v, want %d spread over both", used, n)
	}
	if got := len(e.submissions()); got != n {
		t.Errorf("the SMSC got %d submits, want %d", got, n)
	}
	if st := e.sim.Stats().Accounts[shortCode]; st.Logins != 2 {
		t.Errorf("%d logins, want 2", st.Logins)
	}
}

// TestTLS: the sessions run in TLS, here to a TLS proxy in front of the
// simulator with a certificate made for the test.
func TestTLS(t *testing.T) {
	certPEM, cert := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var proxyAddr string
	e := start(t, smscsim.Config{}, func(c *smsclink.Config) {
		// The simulator runs before tweak: put the proxy in front of it.
		proxyAddr = tlsProxy(t, c.SMSCAddr, cert)
		c.SMSCAddr = proxyAddr
		c.TLS = true
		c.TLSCA = caFile
		c.TLSServerName = "smsc.test"
	})
	ev := submitEvent("0190a8e2-0000-7000-8000-300000000001", segments(t, "over TLS")[0])
	e.publish(ev)
	got := e.waitReports(ev.GetMessageId(), "submitted", "delivered")
	checkReport(t, got["delivered"][0], partnerv1.SegmentState_SEGMENT_STATE_DELIVERED, true, "")

	// A name the certificate does not hold is refused.
	cfg := e.cfg
	cfg.TLSServerName = "other.test"
	dial := func(cfg smsclink.Config) error {
		_, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", proxyAddr, mustTLSConfig(t, cfg))
		return err
	}
	if err := dial(cfg); err == nil {
		t.Error("TLS with the wrong server name: no error")
	}
	cfg.TLSInsecureSkipVerify = true
	if err := dial(cfg); err != nil {
		t.Errorf("TLS without verification: %v", err)
	}
}

func mustTLSConfig(t *testing.T, cfg smsclink.Config) *tls.Config {
	t.Helper()
	c, err := smsclink.TLSConfigForTest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// selfSigned makes a self-signed certificate for smsc.test.
func selfSigned(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smsc.test"},
		DNSNames:              []string{"smsc.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsProxy terminates TLS and forwards each connection to target in plain
// TCP, until the test ends.
func tlsProxy(t *testing.T, target string, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return ln.Addr().String()
}
