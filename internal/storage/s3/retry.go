package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

// retryPolicy retries one request that can safely be sent again.
type retryPolicy struct {
	attempts int           // total tries, the first included
	base     time.Duration // first wait; doubles each time
	max      time.Duration // cap on one wait
}

// defaultRetry waits 0.25+0.5+1+2+4+8 s (with jitter) over 7 tries, enough
// to ride out a load balancer restart or a burst of SlowDown answers.
func defaultRetry() retryPolicy {
	return retryPolicy{attempts: 7, base: 250 * time.Millisecond, max: 8 * time.Second}
}

// do runs fn until it succeeds, fails with an error retrying can't fix, the
// attempts are used up or ctx is done. It returns fn's last error.
func (p retryPolicy) do(ctx context.Context, s *Store, op, key string, fn func() error) error {
	wait := p.base
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt >= p.attempts || !retryable(ctx, err) {
			return err
		}
		// Full jitter in [wait/2, wait) so parallel parts don't retry in step.
		d := wait/2 + rand.N(wait/2+1)
		s.log.Warn("s3 request failed, retrying", "storage", s.name, "key", key,
			"op", op, "attempt", attempt, "wait", d, "error", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, p.max)
	}
}

// retryable reports whether err may go away on its own: server errors,
// throttling, timeouts and broken connections. Context errors never are.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var stop errStop
	if errors.As(err, &stop) {
		return false
	}
	resp := errResponse(err)
	switch resp.Code {
	case "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed",
		"ExpiredToken", "XMinioServerNotInitialized", "XMinioReadQuorum", "XMinioWriteQuorum":
		return true
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
		return true
	}
	if resp.StatusCode != 0 {
		return false // any other answer from the server
	}
	var (
		ne      net.Error
		ue      *url.Error
		dns     *net.DNSError
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		host    x509.HostnameError
		verify  *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &host), errors.As(err, &verify):
		return false // TLS setup: fix ca_file or the endpoint
	case errors.As(err, &dns) && dns.IsNotFound:
		return false // a wrong endpoint name
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.As(err, &ne), errors.As(err, &ue):
		return true
	}
	return false
}
