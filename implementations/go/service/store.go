package service

import (
	"cmp"
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

// badField is INVALID_ARGUMENT for a refused request, with its rich error detail: a google.rpc.BadRequest.
func badField(field, format string, a ...any) error {
	message := fmt.Sprintf(format, a...)
	st, _ := status.New(codes.InvalidArgument, message).WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: message}},
	})
	return st.Err()
}

func validateKey(key string) error {
	if len(key) == 0 || len(key) > 256 {
		return badField("key", "key must be 1 to 256 bytes, got %d", len(key))
	}
	return nil
}

func validateValue(value []byte) error {
	if len(value) > 1<<20 {
		return badField("value", "value must be at most 1048576 bytes, got %d", len(value))
	}
	return nil
}

// matches reports whether a key matches a watch pattern: "prefix*", or the key itself.
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

// watcher is one Monitor: its call, its pattern, and its unbounded queue of events (under the store's lock).
type watcher struct {
	call    context.Context // done as soon as the call is over
	pattern string
	queue   []*pb.WatchEvent
	wake    chan struct{}
}

// store holds the keys and the watchers under one lock, so a watch's snapshot and its registration
// are one critical section.
type store struct {
	mu       sync.Mutex
	data     map[string]*entry
	watching map[*watcher]bool
}

func newStore() *store {
	return &store{data: map[string]*entry{}, watching: map[*watcher]bool{}}
}

func (s *store) get(key string) ([]byte, int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.data[key]; ok {
		return e.value, e.version, true
	}
	return nil, 0, false
}

func (s *store) put(key string, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putLocked(key, value)
}

// putLocked writes one key and queues the event for the matching watchers; true when the key is new.
func (s *store) putLocked(key string, value []byte) bool {
	e, ok := s.data[key]
	if !ok {
		e = &entry{}
		s.data[key] = e
	}
	e.value = value
	e.version++
	for w := range s.watching {
		if matches(w.pattern, key) {
			w.queue = append(w.queue, &pb.WatchEvent{Key: key, Value: value, Version: e.version})
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	return !ok
}

// batch validates every item, then applies them all under one lock.
func (s *store) batch(items []*pb.BatchItem) (*pb.BatchSummary, error) {
	for i, item := range items {
		// A refused item: the same status and details, with the item's index in front of the message.
		if err := cmp.Or(validateKey(item.GetKey()), validateValue(item.GetValue())); err != nil {
			st := status.Convert(err).Proto()
			st.Message = fmt.Sprintf("item %d: %s", i, st.Message)
			return nil, status.FromProto(st).Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	summary := &pb.BatchSummary{}
	for _, item := range items {
		summary.Items++
		summary.ValueBytes += int64(len(item.GetValue()))
		if s.putLocked(item.GetKey(), item.GetValue()) {
			summary.Created++
		} else {
			summary.Updated++
		}
	}
	return summary, nil
}

// watch registers a Monitor's watcher, its queue starting with the existing matches (when asked),
// sorted by key bytes, taken in the same critical section.
func (s *store) watch(call context.Context, pattern string, includeExisting bool) *watcher {
	w := &watcher{call: call, pattern: pattern, wake: make(chan struct{}, 1)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if includeExisting {
		for k, e := range s.data {
			if matches(pattern, k) {
				w.queue = append(w.queue, &pb.WatchEvent{Key: k, Value: e.value, Version: e.version, Existing: true})
			}
		}
		sort.Slice(w.queue, func(i, j int) bool { return w.queue[i].Key < w.queue[j].Key })
	}
	s.watching[w] = true
	return w
}

// next waits for the watcher's next event, or the end of its call.
func (s *store) next(w *watcher) (*pb.WatchEvent, error) {
	for {
		s.mu.Lock()
		if len(w.queue) > 0 {
			ev := w.queue[0]
			w.queue[0] = nil // consumed: no longer kept alive by the queue
			w.queue = w.queue[1:]
			s.mu.Unlock()
			return ev, nil
		}
		s.mu.Unlock()
		select {
		case <-w.wake:
		case <-w.call.Done():
			return nil, status.FromContextError(w.call.Err()).Err()
		}
	}
}

func (s *store) unwatch(w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watching, w)
}

// watchers counts the open Monitors whose pattern starts with prefix. One whose call is over (grpc-go
// cancels its context as it reads the RST_STREAM) counts as ended even before its handler unwatches it.
func (s *store) watchers(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for w := range s.watching {
		if w.call.Err() == nil && strings.HasPrefix(w.pattern, prefix) {
			n++
		}
	}
	return n
}

// totals counts the keys that start with prefix ("": all of them) and the bytes of their values.
func (s *store) totals(prefix string) (keys, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.data {
		if strings.HasPrefix(k, prefix) {
			keys++
			bytes += int64(len(e.value))
		}
	}
	return keys, bytes
}
