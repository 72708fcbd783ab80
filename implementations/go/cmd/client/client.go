// Command client is the grpc-go client of the stock-matrix contract (../../../../CONTRACT.md):
// it runs the script steps of stdin, one JSON object a line, and prints one JSON line per event.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "stockmatrix/gen/kvpb"    // registers proto (the legacy proto.KV)
	_ "stockmatrix/gen/stockpb" // registers stock.v1

	"google.golang.org/genproto/googleapis/rpc/code"
	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // registers the google.rpc detail messages
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// connection is where a call goes: the options, or a step's `connection` object. Equal ones share a channel.
// The keepalive fields are in ms, 0 = unset.
type connection struct {
	Server             string `json:"server"`
	TLSMode            string `json:"tls_mode"`
	CAFile             string `json:"ca_file"`
	CertFile           string `json:"cert_file"`
	KeyFile            string `json:"key_file"`
	ServerName         string `json:"server_name"`
	KeepaliveMs        int    `json:"keepalive_ms"`
	KeepaliveTimeoutMs int    `json:"keepalive_timeout_ms"`
}

// step is one script step (CONTRACT.md, "Script steps"), with its method and messages parsed.
type step struct {
	ID          string            `json:"id"`
	Method      string            `json:"method"`
	Request     json.RawMessage   `json:"request"`
	Requests    []json.RawMessage `json:"requests"`
	Metadata    map[string]string `json:"metadata"`
	TimeoutMs   float64           `json:"timeout_ms"`
	Compression string            `json:"compression"`
	Connection  *connection       `json:"connection"`
	AfterFirst  []*step           `json:"after_first"`
	Copies      int               `json:"copies"`
	ReadPauseMs float64           `json:"read_pause_ms"`
	CancelAfter float64           `json:"cancel_after_ms"`
	CancelMsgs  int               `json:"cancel_after_messages"`
	Lane        int               `json:"lane"`
	Fill        []fill            `json:"fill"`
	Bench       *bench            `json:"bench"`

	path string
	desc grpc.StreamDesc
	out  protoreflect.MessageType
	msgs []proto.Message
	md   metadata.MD // -bin values decoded: grpc-go sends their bytes
}

// bench is a step's `bench`: run its call on Concurrency workers for DurationMs (CONTRACT.md, "Bench steps").
type bench struct {
	DurationMs  int `json:"duration_ms"`
	Concurrency int `json:"concurrency"`
}

// fill is an entry of a step's `fill`: request message Request gets as value Repeat's bytes, Times times.
type fill struct {
	Request int    `json:"request"`
	Repeat  string `json:"repeat"`
	Times   int    `json:"times"`
}

var (
	defaultConn connection
	channelsMu  sync.Mutex
	channels    = map[connection]*grpc.ClientConn{}
	stdoutMu    sync.Mutex
)

func main() {
	if err := parseArgs(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
	if _, err := channelFor(&defaultConn); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	steps := json.NewDecoder(os.Stdin) // one step a line, each handed to its lane as soon as it is read
	lanes := map[int]chan struct{}{}   // a lane's last step: closed when it ended
	var running sync.WaitGroup
	for {
		s, err := parseStep(steps)
		if err == io.EOF {
			running.Wait()
			return
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(2)
		}
		lanes[s.Lane] = runInLane(s, lanes[s.Lane], &running)
	}
}

// runInLane runs a step in a goroutine of its own once the previous step of its lane (after, nil: none)
// ended, and returns the channel closed when it ends. Lanes never wait for each other: no pool, no bound.
func runInLane(s *step, after <-chan struct{}, running *sync.WaitGroup) chan struct{} {
	done := make(chan struct{})
	running.Go(func() {
		if after != nil {
			<-after
		}
		runStep(s)
		close(done)
	})
	return done
}

// parseArgs reads the options (the default connection) and the one command, `script`.
// The flag package exits 2 on an unknown option.
func parseArgs() error {
	flag.StringVar(&defaultConn.Server, "server", "", "HOST:PORT or unix:/ABSOLUTE/PATH")
	flag.StringVar(&defaultConn.TLSMode, "tls-mode", "none", "none|server|mtls")
	flag.StringVar(&defaultConn.CAFile, "ca-file", "", "CA to verify the server (PEM)")
	flag.StringVar(&defaultConn.CertFile, "cert-file", "", "client certificate (PEM), mtls")
	flag.StringVar(&defaultConn.KeyFile, "key-file", "", "client key (PEM), mtls")
	flag.StringVar(&defaultConn.ServerName, "server-name", "", "name to verify the server certificate against")
	flag.IntVar(&defaultConn.KeepaliveMs, "keepalive-ms", 0, "HTTP/2 keepalive PING interval (ms)")
	flag.IntVar(&defaultConn.KeepaliveTimeoutMs, "keepalive-timeout-ms", 0, "keepalive PING ack timeout (ms)")
	flag.Parse()
	switch {
	case defaultConn.Server == "":
		return errors.New("--server is required")
	case defaultConn.TLSMode != "none" && defaultConn.TLSMode != "server" && defaultConn.TLSMode != "mtls":
		return fmt.Errorf("--tls-mode must be none, server or mtls, got %q", defaultConn.TLSMode)
	case defaultConn.KeepaliveMs < 0 || defaultConn.KeepaliveTimeoutMs < 0:
		return errors.New("--keepalive-ms and --keepalive-timeout-ms must be >= 0")
	case flag.NArg() != 1 || flag.Arg(0) != "script":
		return errors.New("the one command is `script` (steps on stdin)")
	}
	return nil
}

// parseStep reads the next step from stdin: its method, request messages and metadata.
func parseStep(steps *json.Decoder) (*step, error) {
	s := &step{}
	steps.DisallowUnknownFields() // a field CONTRACT.md does not define, also in after_first, fill and bench
	if err := steps.Decode(s); err != nil {
		if err != io.EOF && s.ID != "" { // read up to the error: name the step
			err = fmt.Errorf("step %q: %w", s.ID, err)
		}
		return nil, err
	}
	if s.Lane < 0 {
		return nil, fmt.Errorf("step %q: lane must be >= 0, got %d", s.ID, s.Lane)
	}
	if s.Bench != nil && (s.Bench.DurationMs < 0 || s.Bench.Concurrency < 1) {
		return nil, fmt.Errorf("step %q: bench needs duration_ms >= 0 and concurrency >= 1", s.ID)
	}
	return s, s.prepare()
}

// UnmarshalJSON reads a step's `connection` object: a field it does not know is a usage error.
func (c *connection) UnmarshalJSON(b []byte) error {
	fields := json.NewDecoder(bytes.NewReader(b))
	fields.DisallowUnknownFields()
	type plain connection // without this method
	if err := fields.Decode((*plain)(c)); err != nil {
		return fmt.Errorf("connection: %w", err)
	}
	if c.KeepaliveMs < 0 || c.KeepaliveTimeoutMs < 0 {
		return errors.New("connection: keepalive_ms and keepalive_timeout_ms must be >= 0")
	}
	return nil
}

// prepare resolves the method and parses the requests and metadata, also of the after_first steps.
func (s *step) prepare() error {
	name := "stock.v1.Stock." + s.Method
	if strings.HasPrefix(s.Method, "proto.KV.") { // the legacy service of kv.proto, by its full name
		name = s.Method
	} else if strings.Contains(s.Method, ".") { // Ledger.Balance
		name = "stock.v1." + s.Method
	}
	d, _ := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
	method, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return fmt.Errorf("step %q: unknown method %q", s.ID, s.Method)
	}
	if s.Compression != "" && s.Compression != gzip.Name && s.Compression != "identity" {
		return fmt.Errorf("step %q: compression must be gzip or identity, got %q", s.ID, s.Compression)
	}
	if len(s.AfterFirst) > 0 && s.Method != "Monitor" {
		return fmt.Errorf("step %q: after_first is for Monitor steps only, not %q", s.ID, s.Method)
	}
	if s.CancelMsgs != 0 && s.Method != "Monitor" {
		return fmt.Errorf("step %q: cancel_after_messages is for Monitor steps only, not %q", s.ID, s.Method)
	}
	s.path = fmt.Sprintf("/%s/%s", method.Parent().FullName(), method.Name())
	s.desc = grpc.StreamDesc{ClientStreams: method.IsStreamingClient(), ServerStreams: method.IsStreamingServer()}
	in, _ := protoregistry.GlobalTypes.FindMessageByName(method.Input().FullName())
	s.out, _ = protoregistry.GlobalTypes.FindMessageByName(method.Output().FullName())
	raws := s.Requests
	if !s.desc.ClientStreams {
		raws = []json.RawMessage{s.Request}
	}
	for _, raw := range raws {
		msg := in.New().Interface()
		if len(raw) > 0 && string(raw) != "null" {
			if err := protojson.Unmarshal(raw, msg); err != nil {
				return fmt.Errorf("step %q: invalid %s request: %w", s.ID, s.Method, err)
			}
		}
		s.msgs = append(s.msgs, msg)
	}
	if err := s.fillValues(); err != nil {
		return fmt.Errorf("step %q: fill: %w", s.ID, err)
	}
	s.md = metadata.MD{}
	for k, v := range s.Metadata {
		if strings.HasSuffix(k, "-bin") {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return fmt.Errorf("step %q: metadata %s is not base64: %w", s.ID, k, err)
			}
			v = string(b)
		}
		s.md.Append(k, v)
	}
	for _, next := range s.AfterFirst {
		if err := next.prepare(); err != nil {
			return err
		}
	}
	return nil
}

// fillValues sets the `value` of the request messages the step's `fill` entries name (Put and Batch only):
// the decoded `repeat` bytes `times` times, built in one allocation.
func (s *step) fillValues() error {
	for _, f := range s.Fill {
		if f.Request < 0 || f.Request >= len(s.msgs) {
			return fmt.Errorf("no request %d (the step has %d)", f.Request, len(s.msgs))
		}
		m := s.msgs[f.Request].ProtoReflect()
		field := m.Descriptor().Fields().ByName("value")
		if field == nil || field.Kind() != protoreflect.BytesKind || field.IsList() {
			return fmt.Errorf("%s has no value field (Put and Batch only)", m.Descriptor().FullName())
		}
		if f.Times < 0 {
			return fmt.Errorf("times must be >= 0, got %d", f.Times)
		}
		unit, err := base64.StdEncoding.DecodeString(f.Repeat)
		if err != nil {
			return fmt.Errorf("repeat is not base64: %w", err)
		}
		if len(unit) > 0 && f.Times > math.MaxInt/len(unit) {
			return fmt.Errorf("%d times %d bytes is too large", f.Times, len(unit))
		}
		m.Set(field, protoreflect.ValueOfBytes(bytes.Repeat(unit, f.Times)))
	}
	return nil
}

// channelFor is the connection's channel, made (with its credentials) the first time it is needed.
// A connection that failed keeps no channel: every step that uses it reports why.
func channelFor(conn *connection) (*grpc.ClientConn, error) {
	c := *conn
	c.TLSMode = cmp.Or(c.TLSMode, "none")
	channelsMu.Lock()
	defer channelsMu.Unlock()
	if cc, ok := channels[c]; ok {
		return cc, nil
	}
	creds := insecure.NewCredentials()
	switch c.TLSMode {
	case "none":
	case "server", "mtls":
		// Without a server name grpc-go verifies the server against the host part of the address
		// (the channel's authority: localhost for a Unix socket).
		cfg := &tls.Config{RootCAs: x509.NewCertPool(), ServerName: c.ServerName}
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the CA file: %w", err)
		}
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the CA file %s holds no PEM certificate", c.CAFile)
		}
		if c.TLSMode == "mtls" {
			cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("loading the client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		creds = credentials.NewTLS(cfg)
	default:
		return nil, fmt.Errorf("unknown tls_mode %q", c.TLSMode)
	}
	// The receive limit stays grpc-go's default (4 MiB), sends stay uncapped (its default too).
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithStatsHandler(encodingRecorder{})}
	if c.KeepaliveMs > 0 {
		// grpc-go raises a Time under 10 s to 10 s; a Timeout of 0 is its default (20 s).
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                time.Duration(c.KeepaliveMs) * time.Millisecond,
			Timeout:             time.Duration(c.KeepaliveTimeoutMs) * time.Millisecond,
			PermitWithoutStream: true,
		}))
	}
	target := "passthrough:///" + c.Server
	if strings.HasPrefix(c.Server, "unix:") {
		// unix:/PATH and unix:///PATH are grpc-go's own unix resolver's names; its authority is localhost,
		// or the server name when given (with TLS, equal to the credentials' name, as grpc-go requires).
		target = c.Server
		if c.ServerName != "" {
			opts = append(opts, grpc.WithAuthority(c.ServerName))
		}
	}
	cc, err := grpc.NewClient(target, opts...)
	if err == nil {
		channels[c] = cc
	}
	return cc, err
}

// runStep runs a step's call; with copies, that many at once on its channel, copy k as ID*k.
// Past the server's MAX_CONCURRENT_STREAMS grpc-go's transport queues them.
func runStep(s *step) {
	cc, err := channelFor(cmp.Or(s.Connection, &defaultConn))
	if s.Bench != nil {
		runBench(s, cc, err)
		return
	}
	if s.Copies <= 1 {
		runCall(s, s.ID, cc, err)
		return
	}
	var wg sync.WaitGroup
	for k := range s.Copies {
		wg.Go(func() { runCall(s, fmt.Sprintf("%s*%d", s.ID, k), cc, err) })
	}
	wg.Wait()
}

// runCall makes one call of a step and prints its messages and its status line.
func runCall(s *step, id string, cc *grpc.ClientConn, connErr error) {
	start := time.Now()
	if connErr != nil {
		emitStatus(id, start, status.New(codes.Unavailable, connErr.Error()), nil, nil, "")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	if s.TimeoutMs > 0 {
		ctx, cancel = context.WithTimeout(ctx, ms(s.TimeoutMs))
	}
	defer cancel()
	if s.CancelAfter > 0 {
		defer time.AfterFunc(ms(s.CancelAfter), cancel).Stop()
	}
	encoding := &atomic.Value{} // the responses' grpc-encoding, kept by encodingRecorder
	ctx = context.WithValue(metadata.NewOutgoingContext(ctx, s.md), encodingKey{}, encoding)
	var opts []grpc.CallOption
	if s.Compression == gzip.Name {
		opts = append(opts, grpc.UseCompressor(gzip.Name))
	}
	cs, err := cc.NewStream(ctx, &s.desc, s.path, opts...)
	if err != nil {
		emitStatus(id, start, status.Convert(err), nil, nil, "")
		return
	}
	// recv reads one response and prints it.
	recv := func() error {
		msg := s.out.New().Interface()
		if err := cs.RecvMsg(msg); err != nil {
			return err
		}
		emitMessage(id, msg)
		return nil
	}
	switch {
	case !s.desc.ClientStreams && !s.desc.ServerStreams: // unary
		if err = send(cs, s.msgs[0]); err == nil {
			err = recv()
		}
	case !s.desc.ClientStreams: // server stream: after_first once the first message is out, a slow reader
		err = send(cs, s.msgs[0])
		for n := 0; err == nil; n++ {
			if n == 1 {
				for _, next := range s.AfterFirst {
					runStep(next)
				}
			}
			if n > 0 && n == s.CancelMsgs { // cancel_after_messages: RecvMsg then gives the cancelled call's status
				cancel()
				for err == nil {
					err = cs.RecvMsg(s.out.New().Interface())
				}
				break
			}
			if n > 0 { // RecvMsg pulls: nothing is read meanwhile, and flow control holds the server back
				time.Sleep(ms(s.ReadPauseMs))
			}
			err = recv()
		}
	case !s.desc.ServerStreams: // client stream
		for i := 0; err == nil && i < len(s.msgs); i++ {
			err = send(cs, s.msgs[i])
		}
		if err == nil {
			_ = cs.CloseSend()
			err = recv()
		}
	default: // lock-step bidi: one order, one fill; then half-close and read the rest
		for i := 0; err == nil && i < len(s.msgs); i++ {
			if err = send(cs, s.msgs[i]); err == nil {
				err = recv()
			}
		}
		_ = cs.CloseSend()
		for err == nil {
			err = recv()
		}
	}
	if err == io.EOF {
		err = nil
	}
	header, _ := cs.Header()
	encodingName, _ := encoding.Load().(string)
	emitStatus(id, start, status.Convert(err), header, cs.Trailer(), encodingName)
}

// bucket is the log-scale latency bucket of v µs: v below 32, then 16 buckets per power of two.
func bucket(v int64) int {
	n := bits.Len64(uint64(v))
	if n <= 5 {
		return int(v)
	}
	return 16*(n-4) + int(v>>(n-5))&15
}

// runBench runs a bench step: Concurrency goroutines each make the step's call (printing nothing) again and
// again until DurationMs passed, then one line with the counts and the latency histogram of the OK calls.
// Each worker counts on its own; the counts are merged once all ended.
func runBench(s *step, cc *grpc.ClientConn, connErr error) {
	start := time.Now() // monotonic
	if connErr != nil { // no channel: no call can start
		st := status.New(codes.Unavailable, connErr.Error())
		emit(map[string]any{"id": s.ID, "bench": map[string]any{"calls": 0, "errors": 1, "messages": 0,
			"elapsed_ms": float64(time.Since(start).Microseconds()) / 1000, "histogram": [][2]int{},
			"first_error": map[string]string{"code": code.Code(st.Code()).String(), "message": st.Message()}}})
		return
	}
	end := start.Add(time.Duration(s.Bench.DurationMs) * time.Millisecond)
	var opts []grpc.CallOption
	if s.Compression == gzip.Name {
		opts = append(opts, grpc.UseCompressor(gzip.Name))
	}
	// call makes the step's call once (s.msgs built by parseStep, resp reused): the messages it counts, its error.
	call := func(base context.Context, resp proto.Message) (int, error) {
		var ctx context.Context
		var cancel context.CancelFunc
		if s.TimeoutMs > 0 {
			ctx, cancel = context.WithTimeout(base, ms(s.TimeoutMs))
		} else {
			ctx, cancel = context.WithCancel(base)
		}
		defer cancel()
		cs, err := cc.NewStream(ctx, &s.desc, s.path, opts...)
		if err != nil {
			return 0, err
		}
		n := 0
		switch {
		case !s.desc.ServerStreams && !s.desc.ClientStreams: // unary
			if err = send(cs, s.msgs[0]); err == nil {
				err = cs.RecvMsg(resp)
				n = 1
			}
		case !s.desc.ClientStreams: // server stream, read to its end
			for err = send(cs, s.msgs[0]); err == nil; {
				if err = cs.RecvMsg(resp); err == nil {
					n++
				}
			}
		case !s.desc.ServerStreams: // client stream: send all, half-close, the summary
			for i := 0; err == nil && i < len(s.msgs); i++ {
				err = send(cs, s.msgs[i])
			}
			if err == nil {
				_ = cs.CloseSend()
				err = cs.RecvMsg(resp)
			}
			n = len(s.msgs)
		default: // lock-step bidi
			for i := 0; err == nil && i < len(s.msgs); i++ {
				if err = send(cs, s.msgs[i]); err == nil {
					if err = cs.RecvMsg(resp); err == nil {
						n++
					}
				}
			}
			_ = cs.CloseSend()
			for err == nil {
				if err = cs.RecvMsg(resp); err == nil {
					n++
				}
			}
		}
		if err == io.EOF {
			err = nil
		}
		return n, err
	}
	type counts struct {
		calls, errors, messages int
		hist                    [16 * 60]int // by bucket: an int64 of µs has at most 63 bits
		firstErr                error
		firstErrAt              time.Time
	}
	workers := make([]counts, s.Bench.Concurrency)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			c := &workers[w]
			// The stats handler (encodingRecorder) wants its place in every call's context.
			base := context.WithValue(metadata.NewOutgoingContext(context.Background(), s.md), encodingKey{},
				&atomic.Value{})
			resp := s.out.New().Interface()
			for {
				t := time.Now()
				if !t.Before(end) {
					return
				}
				n, err := call(base, resp)
				if err != nil {
					if c.errors++; c.firstErr == nil {
						c.firstErr, c.firstErrAt = err, time.Now()
					}
					continue
				}
				c.calls++
				c.messages += n
				c.hist[bucket(time.Since(t).Microseconds())]++
			}
		})
	}
	wg.Wait()
	elapsed := float64(time.Since(start).Microseconds()) / 1000
	total := counts{}
	for i := range workers {
		c := &workers[i]
		total.calls += c.calls
		total.errors += c.errors
		total.messages += c.messages
		for b, k := range c.hist {
			total.hist[b] += k
		}
		if c.firstErr != nil && (total.firstErr == nil || c.firstErrAt.Before(total.firstErrAt)) {
			total.firstErr, total.firstErrAt = c.firstErr, c.firstErrAt
		}
	}
	histogram := [][2]int{}
	for b, k := range total.hist {
		if k > 0 {
			histogram = append(histogram, [2]int{b, k})
		}
	}
	out := map[string]any{"calls": total.calls, "errors": total.errors, "messages": total.messages,
		"elapsed_ms": elapsed, "histogram": histogram}
	if total.firstErr != nil {
		st := status.Convert(total.firstErr)
		out["first_error"] = map[string]string{"code": code.Code(st.Code()).String(), "message": st.Message()}
	}
	emit(map[string]any{"id": s.ID, "bench": out})
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

// send sends one request. A send the ended stream refuses (io.EOF) is no error: RecvMsg tells the status.
func send(cs grpc.ClientStream, msg proto.Message) error {
	if err := cs.SendMsg(msg); err != io.EOF {
		return err
	}
	return nil
}

// emitMessage writes the message's protojson as it comes (one line, valid JSON): going through emit would
// make encoding/json parse and re-compact it, which for multi-MiB values cost ~15% of the client's CPU.
func emitMessage(id string, msg proto.Message) {
	b, _ := protojson.Marshal(msg) // no error: a message grpc-go could decode prints
	head, _ := json.Marshal(id)    // no error: a string
	line := make([]byte, 0, len(head)+len(b)+20)
	line = append(append(append(append(line, `{"id":`...), head...), `,"message":`...), b...)
	writeLine(append(line, '}'))
}

// emitStatus prints the status line: the code's canonical name (google.rpc.Code), the x-stock-* metadata
// (-bin values base64 again), and the rich error details, each an Any in proto3 JSON with its @type.
func emitStatus(id string, start time.Time, st *status.Status, header, trailer metadata.MD, encoding string) {
	details := []json.RawMessage{}
	for _, d := range st.Proto().GetDetails() {
		b, err := protojson.Marshal(d)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"@type": d.GetTypeUrl(), "error": err.Error()})
		}
		details = append(details, b)
	}
	emit(map[string]any{
		"id":                id,
		"status":            map[string]string{"code": code.Code(st.Code()).String(), "message": st.Message()},
		"headers":           stockMetadata(header),
		"trailers":          stockMetadata(trailer),
		"elapsed_ms":        float64(time.Since(start).Microseconds()) / 1000,
		"response_encoding": cmp.Or(encoding, "identity"),
		"details":           details,
	})
}

func stockMetadata(md metadata.MD) map[string]string {
	out := map[string]string{}
	for k, v := range md {
		if strings.HasPrefix(k, "x-stock-") && len(v) > 0 {
			out[k] = v[len(v)-1]
			if strings.HasSuffix(k, "-bin") { // grpc-go hands -bin values over decoded
				out[k] = base64.StdEncoding.EncodeToString([]byte(out[k]))
			}
		}
	}
	return out
}

// emit writes v as one JSON line.
func emit(v map[string]any) {
	line, _ := json.Marshal(v) // no error: strings, numbers and valid JSON
	writeLine(line)
}

// writeLine writes one line to (unbuffered) stdout, one line at a time as copies run at once.
func writeLine(line []byte) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	_, _ = os.Stdout.Write(append(line, '\n'))
}

// encodingRecorder is a stats handler that keeps the grpc-encoding of a call's response headers
// (stats.InHeader.Compression), which grpc-go keeps out of the header metadata it hands over.
type encodingRecorder struct{}

type encodingKey struct{}

func (encodingRecorder) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InHeader); ok { // every call's ctx has its place (runCall)
		ctx.Value(encodingKey{}).(*atomic.Value).Store(in.Compression)
	}
}

func (encodingRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (encodingRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (encodingRecorder) HandleConn(context.Context, stats.ConnStats) {}
