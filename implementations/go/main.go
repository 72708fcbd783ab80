// Command stock is the grpc-go adapter of the stock-matrix contract
// (../../CONTRACT.md): `stock server ...` and `stock client ...`.
package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: stock server|client [OPTIONS]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		os.Exit(runServer(os.Args[2:]))
	case "client":
		os.Exit(runClient(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "unknown subcommand %q (want server or client)\n", os.Args[1])
		os.Exit(2)
	}
}

// codeNames are the canonical upper-case names, indexed by code.
var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("CODE_%d", uint32(c))
}

func codeByName(name string) (codes.Code, bool) {
	for i, n := range codeNames {
		if n == name {
			return codes.Code(i), true
		}
	}
	return 0, false
}

// encodingRecorder is a stats handler that keeps, per call, the grpc-encoding
// the peer's headers arrived with (stats.InHeader.Compression): grpc-go keeps
// grpc-encoding out of the metadata it hands over. The server reads it for the
// request, the client for the responses.
type encodingRecorder struct{}

type encodingKey struct{}

// withEncodingRecord gives ctx (a call's) a place for the encoding it receives.
func withEncodingRecord(ctx context.Context) context.Context {
	if _, ok := ctx.Value(encodingKey{}).(*atomic.Value); ok {
		return ctx
	}
	return context.WithValue(ctx, encodingKey{}, &atomic.Value{})
}

// receivedEncoding is the grpc-encoding the call's peer sent: gzip, or identity
// when it sent none (or no headers at all).
func receivedEncoding(ctx context.Context) string {
	if rec, ok := ctx.Value(encodingKey{}).(*atomic.Value); ok {
		if name, _ := rec.Load().(string); name != "" {
			return name
		}
	}
	return "identity"
}

func (encodingRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return withEncodingRecord(ctx)
}

func (encodingRecorder) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InHeader); ok {
		if rec, ok := ctx.Value(encodingKey{}).(*atomic.Value); ok {
			rec.Store(in.Compression)
		}
	}
}

func (encodingRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (encodingRecorder) HandleConn(context.Context, stats.ConnStats) {}
