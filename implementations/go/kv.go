package main

import (
	"context"

	"stockmatrix/gen/kvpb"
	pb "stockmatrix/gen/stockpb"
)

// kvServer serves the legacy proto.KV (go-plugin's kvproto) by delegating to
// the Stock methods, so both services share one store, validation and watchers.
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
