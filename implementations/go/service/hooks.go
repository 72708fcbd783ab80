package service

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "stockmatrix/gen/stockpb"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

const specialMessage = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"

// hooks is what the x-stock-* request metadata of one call asks for (CONTRACT.md, "Test hooks").
type hooks struct {
	md                              metadata.MD // grpc-go hands -bin values over decoded, and encodes them on sending
	delayMs, failAfter, repeatValue int
	fail                            *status.Status // nil: no forced failure
}

// value is the first value of a request metadata entry, and whether there is one.
func (h *hooks) value(key string) (string, bool) {
	if v := h.md.Get(key); len(v) > 0 {
		return v[0], true
	}
	return "", false
}

// readHooks reads a call's hooks from its request metadata; a bad value is INVALID_ARGUMENT.
func readHooks(md metadata.MD) (*hooks, error) {
	h := &hooks{md: md}
	numbers := map[string]*int{"x-stock-delay-ms": &h.delayMs, "x-stock-fail-after": &h.failAfter,
		"x-stock-repeat-value": &h.repeatValue}
	for key, n := range numbers {
		if v, ok := h.value(key); ok {
			var err error
			if *n, err = strconv.Atoi(strings.TrimSpace(v)); err != nil || *n < 0 {
				return nil, status.Errorf(codes.InvalidArgument, "%s must be a number, got %q", key, v)
			}
		}
	}
	name, failing := h.value("x-stock-fail")
	failCode := codes.Unknown
	if failing {
		n, ok := code.Code_value[name] // the canonical names of google.rpc.Code
		if !ok || n == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "x-stock-fail: unknown code %q", name)
		}
		failCode = codes.Code(n)
	}
	message, ok := h.value("x-stock-fail-message-bin")
	if !ok {
		if message, ok = h.value("x-stock-fail-message"); !ok {
			message = "forced " + name
		}
	}
	if special, _ := h.value("x-stock-fail-special"); special == "true" {
		h.fail = forcedStatus(failCode, specialMessage)
	} else if failing {
		h.fail = forcedStatus(failCode, message)
	}
	return h, nil
}

// applyHooks applies, in the contract's order, the echoes and the other headers and trailers, the delay
// (a call that is over by then stops there) and the x-stock-watchers trailer; it returns the hooks.
// ctx is the call's: grpc-go keeps its stream there for headers, trailers and per-call compression.
func (s *stockServer) applyHooks(ctx context.Context) (*hooks, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	header, trailer := metadata.MD{}, metadata.MD{}
	for _, key := range []string{"x-stock-echo", "x-stock-echo-bin", "x-stock-echo-header", "x-stock-echo-trailer"} {
		if v := md.Get(key); len(v) > 0 {
			if key != "x-stock-echo-trailer" {
				header.Set(key, v[0])
			}
			if key != "x-stock-echo-header" {
				trailer.Set(key, v[0])
			}
		}
	}
	if v := md.Get("x-stock-report-encoding"); len(v) > 0 && v[0] == "true" {
		trailer.Set("x-stock-request-encoding", *ctx.Value(encodingKey{}).(*string))
	}
	if v := md.Get("x-stock-report-deadline"); len(v) > 0 && v[0] == "true" {
		left := "none"
		if deadline, ok := ctx.Deadline(); ok { // endsEarly's: the stack's is cutoff later
			left = strconv.FormatInt(max(time.Until(deadline.Add(cutoff)).Milliseconds(), 0), 10)
		}
		trailer.Set("x-stock-deadline-ms", left)
	}
	_ = grpc.SetHeader(ctx, header)
	_ = grpc.SetTrailer(ctx, trailer)
	if v := md.Get("x-stock-compress"); len(v) > 0 {
		if err := grpc.SetSendCompressor(ctx, v[0]); err != nil {
			fmt.Fprintln(os.Stderr, "x-stock-compress:", err)
		}
	}
	h, err := readHooks(md)
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(time.Duration(h.delayMs) * time.Millisecond):
	case <-ctx.Done():
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	if prefix, ok := h.value("x-stock-report-watchers"); ok {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-stock-watchers", strconv.Itoa(s.store.watchers(prefix))))
	}
	return h, nil
}

func isStock(fullMethod string) bool { return strings.HasPrefix(fullMethod, "/stock.v1.Stock/") }

// cutoff is how long before its deadline a call still running is ended by the server itself, with
// DEADLINE_EXCEEDED in trailers: grpc-go would reset the stream at the deadline (RST_STREAM CANCEL), which
// grpc-js and C-core clients may read as CANCELLED (CONTRACT.md, "Cancellation and deadlines at the server").
const cutoff = 50 * time.Millisecond

// endsEarly is the call's context with a deadline cutoff before the stack's, which the delay and the handlers
// honour; a call without a deadline keeps none.
func endsEarly(ctx context.Context) (context.Context, context.CancelFunc) {
	if deadline, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, deadline.Add(-cutoff))
	}
	return context.WithCancel(ctx)
}

// unaryHooks is the interceptor of the unary Stock calls: a forced failure ends them at once.
func (s *stockServer) unaryHooks(ctx context.Context, req any, info *grpc.UnaryServerInfo,
	handler grpc.UnaryHandler) (any, error) {
	if !isStock(info.FullMethod) {
		return handler(ctx, req)
	}
	ctx, cancel := endsEarly(ctx)
	defer cancel()
	h, err := s.applyHooks(ctx)
	if err != nil {
		return nil, err
	}
	if h.fail != nil {
		return nil, h.fail.Err()
	}
	resp, err := handler(ctx, req)
	if get, ok := resp.(*pb.GetResponse); ok && err == nil && h.repeatValue > 1 { // a failed Get's is nil
		get.Value = bytes.Repeat(get.GetValue(), h.repeatValue)
	}
	return resp, err
}

// streamHooks is the interceptor of the streaming Stock calls. A forced failure ends a Monitor or a Trade
// once N messages are out (N = 0: at once), a Batch once its request stream is read (hookedStream).
// A call with a deadline runs its handler aside: when endsEarly's context ends first (the handler may be
// waiting in Recv), the call ends here, and the handler can send nothing more and apply no Batch.
func (s *stockServer) streamHooks(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo,
	handler grpc.StreamHandler) error {
	if !isStock(info.FullMethod) {
		return handler(srv, ss)
	}
	ctx, cancel := endsEarly(ss.Context())
	defer cancel()
	h, err := s.applyHooks(ctx)
	if err != nil {
		return err
	}
	if h.fail != nil && info.IsServerStream && h.failAfter == 0 {
		return h.fail.Err()
	}
	hs := &hookedStream{ServerStream: ss, ctx: ctx, hooks: h, batch: !info.IsServerStream}
	if _, ok := ctx.Deadline(); !ok {
		return handler(srv, hs)
	}
	done := make(chan error, 1)
	go func() { done <- handler(srv, hs) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	if !hs.end() {
		return <-done // a Batch being applied: it answers at once
	}
	select {
	case err := <-done:
		return err
	default:
		return status.FromContextError(ctx.Err()).Err()
	}
}

// hookedStream is a Stock call's stream with its hooks, and with endsEarly's context as its context.
type hookedStream struct {
	grpc.ServerStream
	ctx   context.Context
	hooks *hooks
	batch bool
	sent  int

	mu       sync.Mutex // serializes the handler's sends and commit with end
	over     bool       // ended by streamHooks: the handler's result is no longer sent
	applying bool       // a Batch read its whole request stream and applies it: it is not ended
}

func (s *hookedStream) Context() context.Context { return s.ctx }

// end marks the call over unless its Batch is being applied; false when it is.
func (s *hookedStream) end() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.over = !s.applying
	return s.over
}

func (s *hookedStream) SendMsg(m any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over {
		return status.FromContextError(s.ctx.Err()).Err()
	}
	if err := s.ServerStream.SendMsg(m); err != nil {
		return err
	}
	s.sent++
	if s.hooks.fail != nil && s.sent == s.hooks.failAfter {
		return s.hooks.fail.Err()
	}
	return nil
}

func (s *hookedStream) RecvMsg(m any) error {
	s.mu.Lock()
	over := s.over
	s.mu.Unlock()
	if over {
		return status.FromContextError(s.ctx.Err()).Err()
	}
	err := s.ServerStream.RecvMsg(m)
	if err != io.EOF || !s.batch {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.over:
		return status.FromContextError(s.ctx.Err()).Err()
	case s.hooks.fail != nil:
		return s.hooks.fail.Err()
	}
	s.applying = true
	return io.EOF
}

// forcedStatus is the status x-stock-fail asks for, with its rich error detail, a google.rpc.ErrorInfo.
func forcedStatus(c codes.Code, message string) *status.Status {
	st, _ := status.New(c, message).WithDetails(&errdetails.ErrorInfo{Reason: "FORCED", Domain: "stock.v1"})
	return st // no error: readHooks refuses code OK
}

// encodingRecorder is a stats handler that keeps the grpc-encoding a request arrived with, which grpc-go
// keeps out of the metadata it hands over. It sees the request headers before the handler starts.
type encodingRecorder struct{}

type encodingKey struct{}

func (encodingRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, encodingKey{}, new(string))
}

func (encodingRecorder) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InHeader); ok {
		*ctx.Value(encodingKey{}).(*string) = cmp.Or(in.Compression, "identity")
	}
}

func (encodingRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (encodingRecorder) HandleConn(context.Context, stats.ConnStats) {}
