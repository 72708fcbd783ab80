// Command server is the grpc-go server of the stock-matrix contract (../../../../CONTRACT.md):
// stock.v1.Stock with the test hooks (hooks.go) over one store (store.go), proto.KV, health and reflection.
package main

import (
	"cmp"
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
	"syscall"
	"time"

	"stockmatrix/gen/kvpb"
	pb "stockmatrix/gen/stockpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // accepts gzip requests, and sends gzip when x-stock-compress asks
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

var (
	host     = flag.String("host", "127.0.0.1", "host to bind")
	port     = flag.Int("port", -1, "port to bind")
	tlsMode  = flag.String("tls-mode", "none", "none|server|mtls")
	certFile = flag.String("cert-file", "", "server certificate (PEM)")
	keyFile  = flag.String("key-file", "", "server key (PEM)")
	caFile   = flag.String("ca-file", "", "CA of the client certificates (PEM), mtls")
)

func main() {
	if err := parseArgs(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
	srv, err := serve()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- syscall.SIGHUP // stdin's end-of-file stops the server like a signal
	}()
	<-stop
	// GracefulStop would wait for open Monitors: give it a moment, then cancel what is still open.
	time.AfterFunc(300*time.Millisecond, srv.Stop)
	srv.GracefulStop()
}

// parseArgs reads the options; the flag package exits 2 on an unknown one.
func parseArgs() error {
	flag.Parse()
	modeOK := *tlsMode == "none" || *tlsMode == "server" || *tlsMode == "mtls"
	if *port < 0 || *port > 65535 || flag.NArg() > 0 || !modeOK {
		return errors.New("usage: server --port N [--host H] [--tls-mode none|server|mtls] " +
			"[--cert-file F --key-file F] [--ca-file F]")
	}
	return nil
}

// serve starts serving on its own goroutine, and says so once it listens.
func serve() (*grpc.Server, error) {
	stock := &stockServer{store: newStore()}
	// The receive limit is grpc-go's default, 4 MiB; sends stay uncapped (its default too).
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(stock.unaryHooks),
		grpc.StreamInterceptor(stock.streamHooks),
		grpc.StatsHandler(encodingRecorder{}),
		grpc.MaxHeaderListSize(16 << 10), // the contract's header-list limit
	}
	if *tlsMode != "none" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading --cert-file/--key-file: %w", err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
		if *tlsMode == "mtls" {
			pem, err := os.ReadFile(*caFile)
			cfg.ClientCAs, cfg.ClientAuth = x509.NewCertPool(), tls.RequireAndVerifyClientCert
			if err != nil || !cfg.ClientCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no CA certificate in --ca-file %q (%v)", *caFile, err)
			}
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	srv := grpc.NewServer(opts...)
	pb.RegisterStockServer(srv, stock)
	kvpb.RegisterKVServer(srv, &kvServer{stock: stock})
	hs := health.NewServer()
	for _, name := range []string{"", pb.Stock_ServiceDesc.ServiceName, kvpb.KV_ServiceDesc.ServiceName} {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	lis, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return nil, err
	}
	go func() {
		if err := srv.Serve(lis); err != nil {
			fmt.Fprintln(os.Stderr, "error: serving:", err)
			os.Exit(1)
		}
	}()
	fmt.Printf("listening on %s:%d\n", *host, lis.Addr().(*net.TCPAddr).Port)
	return srv, nil
}

// stockServer implements stock.v1.Stock; Audit stays the generated UNIMPLEMENTED.
// The hooks (forced failures, x-stock-repeat-value) are applied around these methods by hooks.go.
type stockServer struct {
	pb.UnimplementedStockServer
	store *store
}

func (s *stockServer) Get(_ context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	if err := validateKey(req.GetKey()); err != nil {
		return nil, err
	}
	value, version, ok := s.store.get(req.GetKey())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "key %s not found", req.GetKey())
	}
	return &pb.GetResponse{Value: value, Version: version}, nil
}

func (s *stockServer) Put(_ context.Context, req *pb.PutRequest) (*pb.Empty, error) {
	if err := cmp.Or(validateKey(req.GetKey()), validateValue(req.GetValue())); err != nil {
		return nil, err
	}
	s.store.put(req.GetKey(), req.GetValue())
	return &pb.Empty{}, nil
}

func (s *stockServer) Monitor(req *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.WatchEvent]) error {
	if req.GetPattern() == "" {
		return badField("pattern", "pattern must not be empty")
	}
	if req.GetMaxEvents() < 0 {
		return badField("max_events", "max_events must not be negative")
	}
	w := s.store.watch(stream.Context(), req.GetPattern(), req.GetIncludeExisting())
	defer s.store.unwatch(w)
	for sent := int32(0); req.GetMaxEvents() == 0 || sent < req.GetMaxEvents(); sent++ {
		ev, err := s.store.next(w)
		if err != nil {
			return err
		}
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	return nil
}

func (s *stockServer) Batch(stream grpc.ClientStreamingServer[pb.BatchItem, pb.BatchSummary]) error {
	var items []*pb.BatchItem
	for item, err := stream.Recv(); err != io.EOF; item, err = stream.Recv() {
		if err != nil {
			return err // a cancelled or failed request stream applies nothing
		}
		items = append(items, item)
	}
	summary, err := s.store.batch(items)
	if err != nil {
		return err
	}
	return stream.SendAndClose(summary)
}

func (s *stockServer) Trade(stream grpc.BidiStreamingServer[pb.TradeOrder, pb.TradeFill]) error {
	positions := map[string]int64{}
	seq := int64(0)
	for order, err := stream.Recv(); err != io.EOF; order, err = stream.Recv() {
		if err != nil {
			return err
		}
		if order.GetQuantity() <= 0 {
			return badField("quantity", "order %q: quantity must be > 0, got %d", order.GetOrderId(),
				order.GetQuantity())
		}
		seq++
		if order.GetSide() == pb.Side_BUY {
			positions[order.GetSymbol()] += order.GetQuantity()
		} else {
			positions[order.GetSymbol()] -= order.GetQuantity()
		}
		fill := &pb.TradeFill{OrderId: order.GetOrderId(), Symbol: order.GetSymbol(), Side: order.GetSide(),
			Quantity: order.GetQuantity(), PriceCents: order.GetPriceCents(), Sequence: seq,
			NetPosition: positions[order.GetSymbol()]}
		if err := stream.Send(fill); err != nil {
			return err
		}
	}
	return nil
}

// Inventory counts, with x-stock-count-prefix, only the keys that start with that prefix.
func (s *stockServer) Inventory(ctx context.Context, _ *pb.Empty) (*pb.InventoryStatus, error) {
	prefix := ""
	if v := metadata.ValueFromIncomingContext(ctx, "x-stock-count-prefix"); len(v) > 0 {
		prefix = v[0]
	}
	keys, bytes := s.store.totals(prefix)
	stack := "grpc-go " + grpc.Version
	return &pb.InventoryStatus{KeyCount: keys, TotalValueBytes: bytes, Language: "go", Stack: stack}, nil
}

// kvServer serves the legacy proto.KV (go-plugin's kvproto) through the Stock methods: one store, one validation.
type kvServer struct {
	kvpb.UnimplementedKVServer
	stock *stockServer
}

func (s *kvServer) Get(ctx context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	resp, err := s.stock.Get(ctx, &pb.GetRequest{Key: req.GetKey()})
	if err != nil {
		return nil, err
	}
	return &kvpb.GetResponse{Value: resp.GetValue()}, nil
}

func (s *kvServer) Put(ctx context.Context, req *kvpb.PutRequest) (*kvpb.Empty, error) {
	if _, err := s.stock.Put(ctx, &pb.PutRequest{Key: req.GetKey(), Value: req.GetValue()}); err != nil {
		return nil, err
	}
	return &kvpb.Empty{}, nil
}
