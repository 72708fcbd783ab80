package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"stockmatrix/gen/kvpb"
	pb "stockmatrix/gen/stockpb"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // accept gzip-compressed requests
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

const specialMessage = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"

// hooks is what the x-stock-* request metadata of one call asks for.
type hooks struct {
	delay       time.Duration
	fail        *status.Status
	failAfter   int64
	repeatValue int64 // Get answers its value this many times over (0 and 1: once)
}

type hooksKey struct{}

func mdValue(md metadata.MD, key string) (string, bool) {
	if v := md.Get(key); len(v) > 0 {
		return v[0], true
	}
	return "", false
}

func parseHooks(md metadata.MD) (*hooks, error) {
	h := &hooks{}
	number := func(key string) (int64, error) {
		v, ok := mdValue(md, key)
		if !ok {
			return 0, nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			return 0, status.Errorf(codes.InvalidArgument, "%s must be a number, got %q", key, v)
		}
		return n, nil
	}
	delay, err := number("x-stock-delay-ms")
	if err != nil {
		return nil, err
	}
	h.delay = time.Duration(delay) * time.Millisecond
	if h.failAfter, err = number("x-stock-fail-after"); err != nil {
		return nil, err
	}
	if h.repeatValue, err = number("x-stock-repeat-value"); err != nil {
		return nil, err
	}
	special, _ := mdValue(md, "x-stock-fail-special")
	name, failing := mdValue(md, "x-stock-fail")
	code := codes.Unknown
	if failing {
		c, ok := codeByName(name)
		if !ok || c == codes.OK {
			return nil, status.Errorf(codes.InvalidArgument, "x-stock-fail: unknown code %q", name)
		}
		code = c
	}
	switch {
	case special == "true":
		h.fail = forced(code, specialMessage)
	case failing:
		// grpc-go hands a -bin value over decoded: its bytes are the message.
		msg, ok := mdValue(md, "x-stock-fail-message-bin")
		if !ok {
			msg, ok = mdValue(md, "x-stock-fail-message")
		}
		if !ok {
			msg = "forced " + name
		}
		h.fail = forced(code, msg)
	}
	return h, nil
}

// forced is the status x-stock-fail asks for, with the standard rich error
// detail (grpc-status-details-bin): a google.rpc.ErrorInfo.
func forced(code codes.Code, msg string) *status.Status {
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: "FORCED", Domain: "stock.v1"})
	if err != nil {
		panic(err) // only for code OK, which x-stock-fail refuses
	}
	return st
}

// enter applies the hooks in contract order: echo (and the other headers and
// trailers), delay, then parses fail. ctx is the call's: grpc-go keeps its
// stream there, so per-call compression and the call's deadline come from it.
func (s *stockServer) enter(ctx context.Context, setHeader, setTrailer func(metadata.MD)) (*hooks, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	header, trailer := metadata.MD{}, metadata.MD{}
	// grpc-go decodes -bin values on receipt and encodes them on sending.
	for _, key := range []string{"x-stock-echo", "x-stock-echo-bin"} {
		if v, ok := mdValue(md, key); ok {
			header.Set(key, v)
			trailer.Set(key, v)
		}
	}
	if v, ok := mdValue(md, "x-stock-echo-header"); ok {
		header.Set("x-stock-echo-header", v)
	}
	if v, ok := mdValue(md, "x-stock-echo-trailer"); ok {
		trailer.Set("x-stock-echo-trailer", v)
	}
	if v, _ := mdValue(md, "x-stock-report-encoding"); v == "true" {
		trailer.Set("x-stock-request-encoding", receivedEncoding(ctx))
	}
	if v, _ := mdValue(md, "x-stock-report-deadline"); v == "true" {
		left := "none"
		if deadline, ok := ctx.Deadline(); ok {
			left = strconv.FormatInt(max(time.Until(deadline).Milliseconds(), 0), 10)
		}
		trailer.Set("x-stock-deadline-ms", left)
	}
	setHeader(header)
	setTrailer(trailer)
	if v, ok := mdValue(md, "x-stock-compress"); ok {
		if err := grpc.SetSendCompressor(ctx, v); err != nil {
			fmt.Fprintln(os.Stderr, "x-stock-compress:", err)
		}
	}
	h, err := parseHooks(md)
	if err != nil {
		return nil, err
	}
	if h.delay > 0 {
		t := time.NewTimer(h.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	// A call its client cancelled, or whose deadline passed, is over: stop here.
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	if prefix, ok := mdValue(md, "x-stock-report-watchers"); ok {
		setTrailer(metadata.Pairs("x-stock-watchers", strconv.Itoa(s.store.watching(prefix))))
	}
	return h, nil
}

func isStock(fullMethod string) bool { return strings.HasPrefix(fullMethod, "/stock.v1.Stock/") }

func (s *stockServer) unaryHooks(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !isStock(info.FullMethod) {
		return handler(ctx, req)
	}
	h, err := s.enter(ctx,
		func(md metadata.MD) { _ = grpc.SetHeader(ctx, md) },
		func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) })
	if err != nil {
		return nil, err
	}
	if h.fail != nil {
		return nil, h.fail.Err()
	}
	return handler(context.WithValue(ctx, hooksKey{}, h), req)
}

type hookedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *hookedStream) Context() context.Context { return s.ctx }

func (s *stockServer) streamHooks(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !isStock(info.FullMethod) {
		return handler(srv, ss)
	}
	h, err := s.enter(ss.Context(),
		func(md metadata.MD) { _ = ss.SetHeader(md) },
		ss.SetTrailer)
	if err != nil {
		return err
	}
	return handler(srv, &hookedStream{ss, context.WithValue(ss.Context(), hooksKey{}, h)})
}

func hooksOf(ctx context.Context) *hooks {
	if h, ok := ctx.Value(hooksKey{}).(*hooks); ok {
		return h
	}
	return &hooks{}
}

// stockServer implements stock.v1.Stock; Audit stays the generated UNIMPLEMENTED.
type stockServer struct {
	pb.UnimplementedStockServer
	store *store
}

func (s *stockServer) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	if err := validateKey(req.GetKey()); err != nil {
		return nil, err
	}
	value, version, ok := s.store.get(req.GetKey())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "key %s not found", req.GetKey())
	}
	if n := hooksOf(ctx).repeatValue; n > 1 {
		value = bytes.Repeat(value, int(n))
	}
	return &pb.GetResponse{Value: value, Version: version}, nil
}

func (s *stockServer) Put(_ context.Context, req *pb.PutRequest) (*pb.Empty, error) {
	if err := validateKey(req.GetKey()); err != nil {
		return nil, err
	}
	if err := validateValue(req.GetValue()); err != nil {
		return nil, err
	}
	s.store.put(req.GetKey(), req.GetValue())
	return &pb.Empty{}, nil
}

func (s *stockServer) Monitor(req *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.WatchEvent]) error {
	ctx := stream.Context()
	h := hooksOf(ctx)
	if req.GetPattern() == "" {
		return badField("pattern", "pattern must not be empty")
	}
	if req.GetMaxEvents() < 0 {
		return badField("max_events", "max_events must not be negative")
	}
	existing, w := s.store.watch(ctx, req.GetPattern(), req.GetIncludeExisting())
	defer s.store.unwatch(w)
	limit := int64(req.GetMaxEvents())
	for sent := int64(0); ; sent++ {
		if h.fail != nil && sent == h.failAfter {
			return h.fail.Err()
		}
		if limit > 0 && sent == limit {
			return nil
		}
		var ev *pb.WatchEvent
		if len(existing) > 0 {
			ev, existing = existing[0], existing[1:]
		} else {
			var err error
			if ev, err = w.next(ctx); err != nil {
				return err
			}
		}
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
}

func (s *stockServer) Batch(stream grpc.ClientStreamingServer[pb.BatchItem, pb.BatchSummary]) error {
	h := hooksOf(stream.Context())
	var items []*pb.BatchItem
	for {
		item, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		items = append(items, item)
	}
	if h.fail != nil {
		return h.fail.Err()
	}
	sum, err := s.store.batch(items)
	if err != nil {
		return err
	}
	return stream.SendAndClose(sum)
}

func (s *stockServer) Trade(stream grpc.BidiStreamingServer[pb.TradeOrder, pb.TradeFill]) error {
	h := hooksOf(stream.Context())
	positions := map[string]int64{}
	for seq := int64(0); ; {
		if h.fail != nil && seq == h.failAfter {
			return h.fail.Err()
		}
		order, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if order.GetQuantity() <= 0 {
			return badField("quantity", "order %q: quantity must be > 0, got %d", order.GetOrderId(), order.GetQuantity())
		}
		seq++
		signed := -order.GetQuantity()
		if order.GetSide() == pb.Side_BUY {
			signed = order.GetQuantity()
		}
		positions[order.GetSymbol()] += signed
		fill := &pb.TradeFill{
			OrderId:     order.GetOrderId(),
			Symbol:      order.GetSymbol(),
			Side:        order.GetSide(),
			Quantity:    order.GetQuantity(),
			PriceCents:  order.GetPriceCents(),
			Sequence:    seq,
			NetPosition: positions[order.GetSymbol()],
		}
		if err := stream.Send(fill); err != nil {
			return err
		}
	}
}

func (s *stockServer) Inventory(context.Context, *pb.Empty) (*pb.InventoryStatus, error) {
	keys, bytes := s.store.totals()
	return &pb.InventoryStatus{KeyCount: keys, TotalValueBytes: bytes, Language: "go", Stack: "grpc-go " + grpc.Version}, nil
}

func serverCreds(mode, certFile, keyFile, caFile string) (credentials.TransportCredentials, error) {
	if mode == "none" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--cert-file and --key-file are required with --tls-mode " + mode)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading --cert-file/--key-file: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if mode == "mtls" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}

func loadPool(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, errors.New("--ca-file is required for this --tls-mode")
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading --ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

func runServer(args []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	port := fs.Int("port", -1, "port to bind")
	host := fs.String("host", "127.0.0.1", "host to bind")
	mode := fs.String("tls-mode", "none", "none|server|mtls")
	certFile := fs.String("cert-file", "", "server certificate (PEM)")
	keyFile := fs.String("key-file", "", "server key (PEM)")
	caFile := fs.String("ca-file", "", "CA for client certificates (PEM)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *port < 0 || *port > 65535 || fs.NArg() > 0 || (*mode != "none" && *mode != "server" && *mode != "mtls") {
		fmt.Fprintln(os.Stderr, "usage: server --port N [--host H] [--tls-mode none|server|mtls] [--cert-file F --key-file F] [--ca-file F]")
		return 2
	}
	creds, err := serverCreds(*mode, *certFile, *keyFile, *caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	stock := &stockServer{store: newStore()}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(stock.unaryHooks),
		grpc.ChainStreamInterceptor(stock.streamHooks),
		grpc.StatsHandler(encodingRecorder{}),
		grpc.MaxRecvMsgSize(4 << 20),
		// Sends stay uncapped (grpc-go's default): x-stock-repeat-value answers over 4 MiB.
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	pb.RegisterStockServer(srv, stock)
	kvpb.RegisterKVServer(srv, &kvServer{stock: stock})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.Stock_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(kvpb.KV_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)

	lis, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	fmt.Printf("listening on %s:%d\n", *host, lis.Addr().(*net.TCPAddr).Port)

	select {
	case <-stop:
	case <-eof:
	case err := <-served:
		fmt.Fprintln(os.Stderr, "error: serving:", err)
		return 1
	}
	// Graceful stop would wait for open Monitor streams: give it a moment, then cancel them.
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(300 * time.Millisecond):
		srv.Stop()
	}
	return 0
}
