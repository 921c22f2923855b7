package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// HTTPError is a response outside 2xx.
type HTTPError struct {
	Status int
	// Body is the start of the response body: services say why there.
	Body string
	// Endpoint is the scheme and host only, never the path or query, which
	// may carry the credential.
	Endpoint string
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s answered %d %s", e.Endpoint, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Endpoint returns "scheme://host" of rawURL, for messages. Paths and
// queries are left out because notifier URLs carry their credential there
// (Slack's /services/T/B/secret, healthchecks' /uuid, ?token=).
func Endpoint(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "the configured URL"
	}
	return u.Scheme + "://" + u.Host
}

// Post sends body to rawURL with the given headers and reads the answer. A
// 2xx status is success. 4xx answers other than 408 and 429 are
// [Permanent]: the request itself is wrong. Errors never contain rawURL's
// path or query.
func Post(ctx context.Context, client *http.Client, rawURL string, header http.Header, body []byte) error {
	ep := Endpoint(rawURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		// url.Parse errors quote the URL.
		return Permanent(fmt.Errorf("build request to %s: invalid URL", ep))
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its Error() quotes the whole URL
		}
		return fmt.Errorf("post to %s: %w", ep, err)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	he := &HTTPError{Status: resp.StatusCode, Endpoint: ep, Body: cleanBody(head)}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout &&
		resp.StatusCode != http.StatusTooManyRequests {
		return Permanent(he)
	}
	return he
}

// cleanBody makes a response body fit for one line of a log.
func cleanBody(b []byte) string {
	if !utf8.Valid(b) {
		return ""
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}
