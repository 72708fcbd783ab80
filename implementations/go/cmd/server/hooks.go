package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
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
		if deadline, ok := ctx.Deadline(); ok {
			left = strconv.FormatInt(max(time.Until(deadline).Milliseconds(), 0), 10)
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

// unaryHooks is the interceptor of the unary Stock calls: a forced failure ends them at once.
func (s *stockServer) unaryHooks(ctx context.Context, req any, info *grpc.UnaryServerInfo,
	handler grpc.UnaryHandler) (any, error) {
	if !isStock(info.FullMethod) {
		return handler(ctx, req)
	}
	h, err := s.applyHooks(ctx)
	if err != nil {
		return nil, err
	}
	if h.fail != nil {
		return nil, h.fail.Err()
	}
	resp, err := handler(ctx, req)
	if get, ok := resp.(*pb.GetResponse); ok && h.repeatValue > 1 {
		get.Value = bytes.Repeat(get.GetValue(), h.repeatValue)
	}
	return resp, err
}

// streamHooks is the interceptor of the streaming Stock calls. A forced failure ends a Monitor or a Trade
// once N messages are out (N = 0: at once), a Batch once its request stream is read (hookedStream).
func (s *stockServer) streamHooks(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo,
	handler grpc.StreamHandler) error {
	if !isStock(info.FullMethod) {
		return handler(srv, ss)
	}
	h, err := s.applyHooks(ss.Context())
	if err != nil {
		return err
	}
	if h.fail != nil && info.IsServerStream && h.failAfter == 0 {
		return h.fail.Err()
	}
	return handler(srv, &hookedStream{ServerStream: ss, hooks: h, batch: !info.IsServerStream})
}

type hookedStream struct {
	grpc.ServerStream
	hooks *hooks
	batch bool
	sent  int
}

func (s *hookedStream) SendMsg(m any) error {
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
	err := s.ServerStream.RecvMsg(m)
	if err == io.EOF && s.batch && s.hooks.fail != nil {
		return s.hooks.fail.Err()
	}
	return err
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
