package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "stockmatrix/gen/stockpb"

	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // registers the google.rpc detail messages
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// method describes one callable method for the generic streaming path.
type method struct {
	path         string
	in, out      func() proto.Message
	clientStream bool
	serverStream bool
}

func empty() proto.Message { return &pb.Empty{} }

var methods = map[string]method{
	"Get":            {pb.Stock_Get_FullMethodName, func() proto.Message { return &pb.GetRequest{} }, func() proto.Message { return &pb.GetResponse{} }, false, false},
	"Put":            {pb.Stock_Put_FullMethodName, func() proto.Message { return &pb.PutRequest{} }, empty, false, false},
	"Monitor":        {pb.Stock_Monitor_FullMethodName, func() proto.Message { return &pb.WatchRequest{} }, func() proto.Message { return &pb.WatchEvent{} }, false, true},
	"Batch":          {pb.Stock_Batch_FullMethodName, func() proto.Message { return &pb.BatchItem{} }, func() proto.Message { return &pb.BatchSummary{} }, true, false},
	"Trade":          {pb.Stock_Trade_FullMethodName, func() proto.Message { return &pb.TradeOrder{} }, func() proto.Message { return &pb.TradeFill{} }, true, true},
	"Inventory":      {pb.Stock_Inventory_FullMethodName, empty, func() proto.Message { return &pb.InventoryStatus{} }, false, false},
	"Audit":          {pb.Stock_Audit_FullMethodName, empty, empty, false, false},
	"Ledger.Balance": {pb.Ledger_Balance_FullMethodName, empty, empty, false, false},
}

// step is one script step (CONTRACT.md), plus its parsed method and requests.
type step struct {
	ID          string            `json:"id"`
	Method      string            `json:"method"`
	Request     json.RawMessage   `json:"request"`
	Requests    []json.RawMessage `json:"requests"`
	Metadata    map[string]string `json:"metadata"`
	TimeoutMs   float64           `json:"timeout_ms"`
	Compression string            `json:"compression"`
	AfterFirst  []*step           `json:"after_first"`
	CancelAfter float64           `json:"cancel_after_ms"`
	Copies      int               `json:"copies"`
	ReadPauseMs float64           `json:"read_pause_ms"`

	m     method
	msgs  []proto.Message
	pairs []string // Metadata as grpc-go takes it (-bin values decoded)
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// metadataPair is one request metadata entry as grpc-go takes it: the value of
// a -bin key is base64 here and is sent as its bytes (grpc-go encodes them).
func metadataPair(k, v string) ([]string, error) {
	k = strings.ToLower(k)
	if strings.HasSuffix(k, "-bin") {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			if b, err = base64.RawStdEncoding.DecodeString(v); err != nil {
				return nil, fmt.Errorf("%s: value is not base64: %v", k, err)
			}
		}
		v = string(b)
	}
	return []string{k, v}, nil
}

// prepare checks the step's method and parses its requests before anything is sent.
func (s *step) prepare() error {
	m, ok := methods[s.Method]
	if !ok {
		return usagef("step %q: unknown method %q", s.ID, s.Method)
	}
	s.m = m
	s.pairs = s.pairs[:0]
	for k, v := range s.Metadata {
		pair, err := metadataPair(k, v)
		if err != nil {
			return usagef("step %q: metadata %v", s.ID, err)
		}
		s.pairs = append(s.pairs, pair...)
	}
	var raws []json.RawMessage
	switch {
	case m.clientStream && isNull(s.Request):
		raws = s.Requests
	case !m.clientStream && s.Requests == nil:
		raws = []json.RawMessage{s.Request}
	default:
		return usagef("step %q: %s takes only `%s`", s.ID, s.Method, map[bool]string{true: "requests", false: "request"}[m.clientStream])
	}
	s.msgs = s.msgs[:0]
	for _, raw := range raws {
		msg := m.in()
		if !isNull(raw) {
			if err := protojson.Unmarshal(raw, msg); err != nil {
				return usagef("step %q: invalid %s request: %v", s.ID, s.Method, err)
			}
		}
		s.msgs = append(s.msgs, msg)
	}
	for _, n := range s.AfterFirst {
		if err := n.prepare(); err != nil {
			return err
		}
	}
	return nil
}

type statusJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type messageLine struct {
	ID      string          `json:"id"`
	Message json.RawMessage `json:"message"`
}

type statusLine struct {
	ID        string            `json:"id"`
	Status    statusJSON        `json:"status"`
	Headers   map[string]string `json:"headers"`
	Trailers  map[string]string `json:"trailers"`
	ElapsedMs float64           `json:"elapsed_ms"`
	Encoding  string            `json:"response_encoding"`
	Details   []json.RawMessage `json:"details"`
}

var stdoutMu sync.Mutex // copies run at once: one line at a time

// emit writes one JSON line to (unbuffered) stdout, flushed at once.
func emit(v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "error: encoding output:", err)
		return
	}
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	_, _ = os.Stdout.Write(buf.Bytes())
}

// detailsJSON prints the rich error details of a status (the google.rpc.Status
// grpc-go decodes from grpc-status-details-bin), each an Any in proto3 JSON
// with its @type, resolved against the registry the errdetails import fills
// (google.rpc.BadRequest, ErrorInfo, ...).
func detailsJSON(st *status.Status) []json.RawMessage {
	out := []json.RawMessage{}
	printer := protojson.MarshalOptions{Resolver: protoregistry.GlobalTypes}
	for _, d := range st.Proto().GetDetails() {
		b, err := printer.Marshal(d)
		if err != nil {
			fmt.Fprintf(os.Stderr, "error: printing detail %s: %v\n", d.GetTypeUrl(), err)
			continue
		}
		out = append(out, b)
	}
	return out
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

type client struct {
	conn        *grpc.ClientConn
	timeout     time.Duration
	metadata    []string
	compression string
}

// run runs one prepared step (and its after_first steps), printing every line;
// with copies, that many calls at once on the one channel, copy k as ID*k.
// Past the server's MAX_CONCURRENT_STREAMS, grpc-go's transport queues them.
func (c *client) run(s *step) {
	if s.Copies <= 1 {
		c.runCall(s, s.ID)
		return
	}
	var wg sync.WaitGroup
	for k := range s.Copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.runCall(s, fmt.Sprintf("%s*%d", s.ID, k))
		}()
	}
	wg.Wait()
}

// runCall makes one call of a step, its lines under id.
func (c *client) runCall(s *step, id string) {
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	timeout := c.timeout
	if s.TimeoutMs > 0 {
		timeout = time.Duration(s.TimeoutMs * float64(time.Millisecond))
	}
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	if s.CancelAfter > 0 {
		t := time.AfterFunc(time.Duration(s.CancelAfter*float64(time.Millisecond)), cancel)
		defer t.Stop()
	}
	ctx = withEncodingRecord(ctx) // filled by encodingRecorder from the response headers
	pairs := append(append([]string(nil), c.metadata...), s.pairs...)
	ctx = metadata.AppendToOutgoingContext(ctx, pairs...)
	var opts []grpc.CallOption
	compression := c.compression
	if s.Compression != "" {
		compression = s.Compression
	}
	if compression == gzip.Name {
		opts = append(opts, grpc.UseCompressor(gzip.Name))
	}
	header, trailer, err := c.call(ctx, s, id, opts)
	st := status.Convert(err)
	emit(statusLine{
		ID:        id,
		Status:    statusJSON{Code: codeName(st.Code()), Message: st.Message()},
		Headers:   stockMetadata(header),
		Trailers:  stockMetadata(trailer),
		ElapsedMs: float64(time.Since(start).Microseconds()) / 1000,
		Encoding:  receivedEncoding(ctx),
		Details:   detailsJSON(st),
	})
}

func (c *client) call(ctx context.Context, s *step, id string, opts []grpc.CallOption) (metadata.MD, metadata.MD, error) {
	desc := &grpc.StreamDesc{ClientStreams: s.m.clientStream, ServerStreams: s.m.serverStream}
	cs, err := c.conn.NewStream(ctx, desc, s.m.path, opts...)
	if err != nil {
		return nil, nil, err
	}
	pending := s.msgs
	sending := true
	// send sends the next request; a failed send ends sending (the status comes from RecvMsg).
	send := func() error {
		msg := pending[0]
		pending = pending[1:]
		if err := cs.SendMsg(msg); err != nil {
			sending = false
			if err != io.EOF {
				return err
			}
		}
		return nil
	}
	closeSend := func() {
		if sending {
			_ = cs.CloseSend()
			sending = false
		}
	}
	lockStep := s.m.clientStream && s.m.serverStream
	if lockStep && len(pending) > 0 {
		err = send()
	} else {
		for sending && len(pending) > 0 && err == nil {
			err = send()
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if len(pending) == 0 {
		closeSend()
	}
	for count := 0; ; {
		out := s.m.out()
		if err = cs.RecvMsg(out); err != nil {
			break
		}
		b, merr := protojson.Marshal(out)
		if merr != nil {
			err = merr
			break
		}
		emit(messageLine{ID: id, Message: b})
		if count++; count == 1 {
			for _, n := range s.AfterFirst {
				c.run(n)
			}
		}
		if !s.m.serverStream {
			break // RecvMsg already saw the end of a single-response call
		}
		if s.ReadPauseMs > 0 {
			// A slow reader: RecvMsg pulls, so nothing is read meanwhile and
			// grpc-go's stream flow control holds the server back.
			time.Sleep(time.Duration(s.ReadPauseMs * float64(time.Millisecond)))
		}
		if lockStep && sending {
			if len(pending) == 0 {
				closeSend()
			} else if err = send(); err != nil {
				break
			}
		}
	}
	if err == io.EOF {
		err = nil
	}
	header, _ := cs.Header()
	return header, cs.Trailer(), err
}

// metadataFlag collects repeated --metadata K=V.
type metadataFlag []string

func (m *metadataFlag) String() string { return strings.Join(*m, ",") }

func (m *metadataFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("expected K=V, got %q", v)
	}
	pair, err := metadataPair(k, val)
	if err != nil {
		return err
	}
	*m = append(*m, pair...)
	return nil
}

func clientCreds(mode, caFile, certFile, keyFile, serverName, server string) (credentials.TransportCredentials, error) {
	if mode == "none" {
		return insecure.NewCredentials(), nil
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	if serverName == "" {
		serverName = server
		if h, _, err := net.SplitHostPort(server); err == nil {
			serverName = h
		}
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if mode == "mtls" {
		if certFile == "" || keyFile == "" {
			return nil, errors.New("--cert-file and --key-file are required with --tls-mode mtls")
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading --cert-file/--key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

// readLines returns stdin's non-blank lines.
func readLines(r *bufio.Reader, fn func(string) error) error {
	for {
		line, err := r.ReadString('\n')
		if strings.TrimSpace(line) != "" {
			if ferr := fn(line); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return usagef("reading stdin: %v", err)
		}
	}
}

// stdinMessages parses one proto3 JSON message per stdin line.
func stdinMessages(newMsg func() proto.Message) ([]proto.Message, error) {
	var msgs []proto.Message
	err := readLines(bufio.NewReader(os.Stdin), func(line string) error {
		msg := newMsg()
		if err := protojson.Unmarshal([]byte(line), msg); err != nil {
			return usagef("invalid message line %q: %v", strings.TrimSpace(line), err)
		}
		msgs = append(msgs, msg)
		return nil
	})
	return msgs, err
}

// commandStep turns a single command into its step (nil for script).
func commandStep(cmd string, args []string) (*step, error) {
	mk := func(method string, msgs ...proto.Message) *step {
		return &step{ID: cmd, Method: method, m: methods[method], msgs: msgs}
	}
	need := func(n int) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s), got %d", cmd, n, len(args))
		}
		return nil
	}
	switch cmd {
	case "get":
		if err := need(1); err != nil {
			return nil, err
		}
		return mk("Get", &pb.GetRequest{Key: args[0]}), nil
	case "put":
		if err := need(2); err != nil {
			return nil, err
		}
		return mk("Put", &pb.PutRequest{Key: args[0], Value: []byte(args[1])}), nil
	case "monitor":
		req := &pb.WatchRequest{}
		var positional []string
		for i := 0; i < len(args); i++ {
			a := args[i]
			switch {
			case a == "--include-existing":
				req.IncludeExisting = true
			case a == "--max-events" || strings.HasPrefix(a, "--max-events="):
				v, ok := strings.CutPrefix(a, "--max-events=")
				if !ok {
					if i++; i >= len(args) {
						return nil, usagef("--max-events needs a value")
					}
					v = args[i]
				}
				n, err := strconv.ParseInt(v, 10, 32)
				if err != nil {
					return nil, usagef("--max-events: %v", err)
				}
				req.MaxEvents = int32(n)
			case strings.HasPrefix(a, "--"):
				return nil, usagef("monitor: unknown option %q", a)
			default:
				positional = append(positional, a)
			}
		}
		if len(positional) != 1 {
			return nil, usagef("monitor takes one PATTERN")
		}
		req.Pattern = positional[0]
		return mk("Monitor", req), nil
	case "batch":
		if len(args) == 0 {
			msgs, err := stdinMessages(methods["Batch"].in)
			return mk("Batch", msgs...), err
		}
		var msgs []proto.Message
		for _, a := range args {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return nil, usagef("batch item must be KEY=VALUE, got %q", a)
			}
			msgs = append(msgs, &pb.BatchItem{Key: k, Value: []byte(v)})
		}
		return mk("Batch", msgs...), nil
	case "trade":
		if err := need(0); err != nil {
			return nil, err
		}
		msgs, err := stdinMessages(methods["Trade"].in)
		return mk("Trade", msgs...), err
	case "inventory":
		if err := need(0); err != nil {
			return nil, err
		}
		return mk("Inventory", &pb.Empty{}), nil
	case "script":
		if err := need(0); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return nil, usagef("unknown command %q", cmd)
}

func runClient(args []string) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	server := fs.String("server", "", "HOST:PORT")
	mode := fs.String("tls-mode", "none", "none|server|mtls")
	caFile := fs.String("ca-file", "", "CA to verify the server (PEM)")
	certFile := fs.String("cert-file", "", "client certificate (PEM), mtls")
	keyFile := fs.String("key-file", "", "client key (PEM), mtls")
	serverName := fs.String("server-name", "", "name to verify the server certificate against")
	timeoutMs := fs.Int64("timeout-ms", 0, "default deadline of every call (0 = none)")
	compression := fs.String("compression", "", "gzip: compress every request")
	var md metadataFlag
	fs.Var(&md, "metadata", "K=V request metadata for every call (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(code int, err error) int {
		fmt.Fprintln(os.Stderr, "error:", err)
		return code
	}
	switch {
	case *server == "":
		return fail(2, errors.New("--server is required"))
	case *mode != "none" && *mode != "server" && *mode != "mtls":
		return fail(2, fmt.Errorf("--tls-mode must be none, server or mtls, got %q", *mode))
	case *compression != "" && *compression != gzip.Name && *compression != "identity":
		return fail(2, fmt.Errorf("--compression must be gzip or identity, got %q", *compression))
	case *timeoutMs < 0:
		return fail(2, errors.New("--timeout-ms must not be negative"))
	case fs.NArg() == 0:
		return fail(2, errors.New("missing COMMAND (get, put, monitor, batch, trade, inventory, script)"))
	}
	single, err := commandStep(fs.Arg(0), fs.Args()[1:])
	if err != nil {
		return fail(2, err)
	}
	creds, err := clientCreds(*mode, *caFile, *certFile, *keyFile, *serverName, *server)
	if err != nil {
		return fail(1, err)
	}
	conn, err := grpc.NewClient("passthrough:///"+*server,
		grpc.WithTransportCredentials(creds),
		grpc.WithStatsHandler(encodingRecorder{}),
		// The receive limit is the default 4 MiB; sends stay uncapped (grpc-go's default).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4<<20)))
	if err != nil {
		return fail(1, err)
	}
	defer conn.Close()
	c := &client{conn: conn, timeout: time.Duration(*timeoutMs) * time.Millisecond, metadata: md, compression: *compression}
	if single != nil {
		c.run(single)
		return 0
	}
	err = readLines(bufio.NewReaderSize(os.Stdin, 1<<20), func(line string) error {
		s := &step{}
		if err := json.Unmarshal([]byte(line), s); err != nil {
			return usagef("invalid step line: %v", err)
		}
		if err := s.prepare(); err != nil {
			return err
		}
		c.run(s)
		return nil
	})
	if err != nil {
		return fail(2, err)
	}
	return 0
}
