// Package slack posts notifications to a Slack incoming webhook
// (https://api.slack.com/messaging/webhooks) as Block Kit messages.
//
// The webhook URL is the credential: anyone who has it can post to the
// channel. It is therefore a config.Secret, and errors name only its host.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/summary"
)

// Config is a `type: slack` notifier.
//
//	notifiers:
//	  team-slack:
//	    type: slack
//	    url: ${env:SLACK_WEBHOOK_URL}   # https://hooks.slack.com/services/...
//	    channel: "#ops"                 # optional; the webhook's own channel otherwise
//	    on: [failure, suspect, overdue, drill]
type Config struct {
	URL     config.Secret `yaml:"url"`
	Channel string        `yaml:"channel"`
}

// DefaultConfig returns the defaults the file's keys are decoded over.
func DefaultConfig() *Config { return &Config{} }

// Validate implements config.Spec.
func (c *Config) Validate() error {
	if !c.URL.IsSet() {
		return config.Errorf("url", "for example `url: ${env:SLACK_WEBHOOK_URL}` (create one under Slack's Incoming Webhooks)", "url is required")
	}
	return nil
}

// Notifier posts to one webhook.
type Notifier struct {
	url     string
	channel string
	client  *http.Client
}

var _ notify.Notifier = (*Notifier)(nil)

// New returns a notifier for cfg (whose URL must be resolved).
func New(cfg *Config, deps notify.Deps) (*Notifier, error) {
	deps = deps.WithDefaults()
	raw := cfg.URL.Reveal()
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("slack url is not an http(s) URL: expected https://hooks.slack.com/services/...")
	}
	return &Notifier{url: raw, channel: cfg.Channel, client: deps.HTTP}, nil
}

// Notify posts ev. RunStarted is not posted.
func (n *Notifier) Notify(ctx context.Context, ev notify.Event) error {
	if ev.Kind == notify.RunStarted {
		return nil
	}
	body, err := Payload(ev, n.channel)
	if err != nil {
		return notify.Permanent(err)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if err := notify.Post(ctx, n.client, n.url, h, body); err != nil {
		return fmt.Errorf("post to slack: %w", err)
	}
	return nil
}

// Message is the JSON body of an incoming-webhook post.
type Message struct {
	Channel string  `json:"channel,omitempty"`
	Text    string  `json:"text"` // fallback for notifications and old clients
	Blocks  []Block `json:"blocks"`
}

// Block is a Block Kit layout block (header, section, context, divider).
type Block struct {
	Type     string `json:"type"`
	Text     *Text  `json:"text,omitempty"`
	Fields   []Text `json:"fields,omitempty"`
	Elements []Text `json:"elements,omitempty"`
}

// Text is a Block Kit text object.
type Text struct {
	Type string `json:"type"` // plain_text or mrkdwn
	Text string `json:"text"`
}

// Limits from Slack's Block Kit reference.
const (
	maxHeader  = 150
	maxSection = 3000
	maxField   = 2000
	maxFields  = 10
)

// Payload returns the JSON body posted for ev.
func Payload(ev notify.Event, channel string) ([]byte, error) {
	m := Message{Channel: channel, Text: ev.Title()}
	m.Blocks = append(m.Blocks, Block{Type: "header", Text: &Text{"plain_text", cut(icon(ev.Kind)+" "+ev.Title(), maxHeader)}})

	if ev.Kind == notify.Summary && ev.Summary != nil {
		m.Blocks = append(m.Blocks, Block{Type: "section", Text: md(codeBlock(ev.Summary.Text(), maxSection))})
		m.Blocks = append(m.Blocks, contextBlock("lifeboat daily summary"))
		return marshal(m)
	}

	var fields []Text
	add := func(name, value string) {
		if value != "" && len(fields) < maxFields {
			fields = append(fields, *md(cut("*"+name+"*\n"+esc(value), maxField)))
		}
	}
	add("Source", ev.Source)
	add("Host", ev.Host)
	if ev.Kind == notify.Overdue {
		newest := "never"
		if !ev.Newest.IsZero() {
			newest = ev.Newest.UTC().Format("2006-01-02 15:04 MST") + " (" + summary.Age(ev.Finished.Sub(ev.Newest)) + " ago)"
		}
		add("Newest good backup", newest)
		add("RPO", summary.Span(ev.RPO))
	} else {
		if d := ev.Duration(); d > 0 {
			add("Duration", d.Round(time.Second).String())
		}
		if ev.Bytes > 0 {
			add("Stored", summary.Bytes(ev.Bytes))
		}
		if r := ev.Report; r != nil {
			for _, it := range r.Items {
				if it.PrevStoredSize > 0 && it.StoredSize > 0 && len(r.Items) == 1 {
					add("Change", fmt.Sprintf("%+.1f%%", float64(it.StoredSize-it.PrevStoredSize)/float64(it.PrevStoredSize)*100))
				}
			}
		}
		add("Location", ev.Location)
	}
	if len(fields) > 0 {
		m.Blocks = append(m.Blocks, Block{Type: "section", Fields: fields})
	}

	if ev.Err != nil {
		msg, hint := notify.ErrorText(ev.Err)
		text := "*Error*\n" + codeBlock(msg, maxSection/2)
		if hint != "" {
			text += "\n*Hint:* " + esc(hint)
		}
		m.Blocks = append(m.Blocks, Block{Type: "section", Text: md(cut(text, maxSection))})
	}
	if r := ev.Report; r != nil {
		for _, it := range r.Items {
			var lines []string
			for _, st := range it.Storages {
				if !st.OK {
					lines = append(lines, ":x: storage "+esc(st.Storage)+": "+esc(st.Error))
				}
			}
			for _, c := range it.Checks {
				if !c.OK {
					lines = append(lines, ":warning: check "+esc(c.Name)+": "+esc(c.Detail))
				}
			}
			text := strings.Join(lines, "\n")
			if it.StderrTail != "" {
				if text != "" {
					text += "\n"
				}
				text += "*stderr (last lines)*\n" + codeBlock(it.StderrTail, maxSection-len(text)-40)
			}
			if text != "" {
				m.Blocks = append(m.Blocks, Block{Type: "section", Text: md(cut(text, maxSection))})
			}
		}
	}
	ctxText := "lifeboat"
	if ev.RunID != "" {
		ctxText += " · run " + esc(ev.RunID)
	}
	if !ev.Finished.IsZero() {
		ctxText += " · " + ev.Finished.UTC().Format("2006-01-02 15:04:05 MST")
	}
	m.Blocks = append(m.Blocks, contextBlock(ctxText))
	return marshal(m)
}

// marshal encodes without HTML escaping: the text is already escaped for
// mrkdwn, and \u003c in a payload helps nobody reading it.
func marshal(m Message) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func contextBlock(s string) Block {
	return Block{Type: "context", Elements: []Text{*md(s)}}
}

func md(s string) *Text { return &Text{Type: "mrkdwn", Text: s} }

func icon(k notify.Kind) string {
	switch k {
	case notify.RunSucceeded, notify.DrillSucceeded:
		return "✅"
	case notify.RunSuspect:
		return "⚠️"
	case notify.Overdue:
		return "⏰"
	case notify.Summary:
		return "📋"
	}
	return "❌"
}

// esc escapes the three characters Slack's mrkdwn treats as control
// characters (https://api.slack.com/reference/surfaces/formatting#escaping).
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// codeBlock puts s in a ``` block, escaped, at most limit characters long.
func codeBlock(s string, limit int) string {
	s = strings.ReplaceAll(esc(strings.TrimSpace(s)), "```", "'''")
	return "```" + cutStart(s, max(limit-6, 20)) + "```"
}

// cut shortens s to n characters, ending with an ellipsis.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// cutStart keeps the last n characters of s: the end of a stderr tail is
// where the reason is.
func cutStart(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return "…" + string(r[len(r)-n+1:])
}
