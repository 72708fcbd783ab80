package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	pb "stockmatrix/gen/stockpb"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	maxKey   = 256
	maxValue = 1 << 20
)

// badField is INVALID_ARGUMENT for a refused request, with the standard rich
// error detail (grpc-status-details-bin): a google.rpc.BadRequest naming field.
func badField(field, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}},
	})
	if err != nil {
		panic(err) // only for code OK
	}
	return st.Err()
}

func validateKey(key string) error {
	if len(key) == 0 || len(key) > maxKey {
		return badField("key", "key must be 1 to %d bytes, got %d", maxKey, len(key))
	}
	return nil
}

func validateValue(value []byte) error {
	if len(value) > maxValue {
		return badField("value", "value must be at most %d bytes, got %d", maxValue, len(value))
	}
	return nil
}

// matches reports whether key matches a watch pattern ("prefix*" or exact).
func matches(pattern, key string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(key, prefix)
	}
	return pattern == key
}

type entry struct {
	value   []byte
	version int64
}

// watcher is one Monitor's unbounded queue of live events.
type watcher struct {
	call    context.Context // the Monitor's: done as soon as the call is over
	pattern string
	mu      sync.Mutex
	queue   []*pb.WatchEvent
	notify  chan struct{}
}

func (w *watcher) push(ev *pb.WatchEvent) {
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// next waits for the next live event or the end of ctx.
func (w *watcher) next(ctx context.Context) (*pb.WatchEvent, error) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			ev := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return ev, nil
		}
		w.mu.Unlock()
		select {
		case <-w.notify:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// store holds the keys and the watchers under one lock, so a watch's
// snapshot and its registration are one critical section.
type store struct {
	mu       sync.Mutex
	data     map[string]*entry
	watchers map[*watcher]struct{}
}

func newStore() *store {
	return &store{data: map[string]*entry{}, watchers: map[*watcher]struct{}{}}
}

func (s *store) get(key string) ([]byte, int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.data[key]
	if !ok {
		return nil, 0, false
	}
	return e.value, e.version, true
}

// putLocked writes one key and notifies matching watchers; true when created.
func (s *store) putLocked(key string, value []byte) bool {
	e, ok := s.data[key]
	if !ok {
		e = &entry{}
		s.data[key] = e
	}
	e.value = value
	e.version++
	for w := range s.watchers {
		if matches(w.pattern, key) {
			w.push(&pb.WatchEvent{Key: key, Value: value, Version: e.version})
		}
	}
	return !ok
}

func (s *store) put(key string, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putLocked(key, value)
}

// watch registers a watcher and returns the existing matches (when asked),
// sorted by key bytes, taken in the same critical section.
func (s *store) watch(call context.Context, pattern string, includeExisting bool) ([]*pb.WatchEvent, *watcher) {
	w := &watcher{call: call, pattern: pattern, notify: make(chan struct{}, 1)}
	s.mu.Lock()
	defer s.mu.Unlock()
	var existing []*pb.WatchEvent
	if includeExisting {
		for k, e := range s.data {
			if matches(pattern, k) {
				existing = append(existing, &pb.WatchEvent{Key: k, Value: e.value, Version: e.version, Existing: true})
			}
		}
		sort.Slice(existing, func(i, j int) bool { return existing[i].Key < existing[j].Key })
	}
	s.watchers[w] = struct{}{}
	return existing, w
}

func (s *store) unwatch(w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watchers, w)
}

// watching counts the open watchers whose pattern starts with prefix. One whose
// call is over (grpc-go cancels its context as it reads the RST_STREAM) counts
// as ended even before its handler has returned and unwatched it.
func (s *store) watching(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for w := range s.watchers {
		if w.call.Err() == nil && strings.HasPrefix(w.pattern, prefix) {
			n++
		}
	}
	return n
}

// batch validates every item, then applies them all under one lock.
func (s *store) batch(items []*pb.BatchItem) (*pb.BatchSummary, error) {
	for i, it := range items {
		err := validateKey(it.GetKey())
		if err == nil {
			err = validateValue(it.GetValue())
		}
		if err != nil {
			// The same status and details, the item's index in front of the message.
			st := status.Convert(err).Proto()
			st.Message = fmt.Sprintf("item %d: %s", i, st.Message)
			return nil, status.FromProto(st).Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := &pb.BatchSummary{}
	for _, it := range items {
		sum.Items++
		sum.ValueBytes += int64(len(it.GetValue()))
		if s.putLocked(it.GetKey(), it.GetValue()) {
			sum.Created++
		} else {
			sum.Updated++
		}
	}
	return sum, nil
}

func (s *store) totals() (keys, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.data {
		bytes += int64(len(e.value))
	}
	return int64(len(s.data)), bytes
}
