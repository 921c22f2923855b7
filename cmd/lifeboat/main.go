// Command lifeboat backs up and restores the data of web applications.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// Ctrl-C and SIGTERM cancel the context: running dumps are stopped and
	// uploads aborted, so nothing half-written is committed. A second
	// signal kills the process the usual way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = catalog.SafeHost(host)
	app := &cli.App{
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		Env:         os.LookupEnv,
		Now:         time.Now,
		Hostname:    host,
		Version:     version,
		Interactive: term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stderr.Fd())),
		StderrTTY:   term.IsTerminal(int(os.Stderr.Fd())),
	}
	err = cli.Execute(ctx, app, os.Args[1:])
	if err != nil {
		cli.Render(os.Stderr, err)
	}
	os.Exit(cli.ExitCode(err))
}
