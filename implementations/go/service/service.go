// Package service is the stock-matrix contract's service in grpc-go (../../../CONTRACT.md): stock.v1.Stock with
// the test hooks (hooks.go) over one store (store.go), and the legacy proto.KV over the same store. A server
// (cmd/server, or the go-plugin adapter in ../go-plugin) makes its grpc.Server with ServerOptions, then Register.
package service

import (
	"cmp"
	"context"
	"io"

	"stockmatrix/gen/kvpb"
	pb "stockmatrix/gen/stockpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // accepts gzip requests, and sends gzip when x-stock-compress asks
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Stack is the Inventory.stack of the plain grpc-go server.
const Stack = "grpc-go " + grpc.Version

// Service is one store, served as stock.v1.Stock and proto.KV.
type Service struct {
	stock *stockServer
}

// New is a service with an empty store; Inventory answers with language and stack.
func New(language, stack string) *Service {
	return &Service{stock: &stockServer{store: newStore(), language: language, stack: stack}}
}

// ServerOptions are the options of the grpc.Server that serves s: the hooks' interceptors (they apply to the
// stock.v1.Stock calls only), the recorder of the request encoding, and the contract's header-list limit.
// The receive limit is grpc-go's default, 4 MiB; sends stay uncapped (its default too).
func (s *Service) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.UnaryInterceptor(s.stock.unaryHooks),
		grpc.StreamInterceptor(s.stock.streamHooks),
		grpc.StatsHandler(encodingRecorder{}),
		grpc.MaxHeaderListSize(16 << 10), // the contract's header-list limit
	}
}

// Register registers stock.v1.Stock and proto.KV on srv, which was made with s.ServerOptions().
// Health and reflection are the server's own.
func (s *Service) Register(srv grpc.ServiceRegistrar) {
	pb.RegisterStockServer(srv, s.stock)
	kvpb.RegisterKVServer(srv, &kvServer{stock: s.stock})
}

// stockServer implements stock.v1.Stock; Audit stays the generated UNIMPLEMENTED.
// The hooks (forced failures, x-stock-repeat-value) are applied around these methods by hooks.go.
type stockServer struct {
	pb.UnimplementedStockServer
	store           *store
	language, stack string // what Inventory names
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
	return &pb.InventoryStatus{KeyCount: keys, TotalValueBytes: bytes, Language: s.language, Stack: s.stack}, nil
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
