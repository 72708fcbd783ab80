package service

import (
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
)

// WaitForStop returns when the contract says a server stops: on SIGTERM, on SIGINT, or when stdin reaches
// end-of-file (so a runner that died never leaves servers behind).
func WaitForStop() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- syscall.SIGHUP // stdin's end-of-file stops the server like a signal
	}()
	<-stop
}

// Stop stops srv: GracefulStop would wait for open Monitors, so it gets a moment, then what is still open is
// cancelled.
func Stop(srv *grpc.Server) {
	time.AfterFunc(300*time.Millisecond, srv.Stop)
	srv.GracefulStop()
}
