# frozen_string_literal: true

# stock.v1.Stock script client over the grpc gem (see ../../CONTRACT.md).
$LOAD_PATH.unshift(File.join(__dir__, 'gen'))

require 'base64'
require 'json'
require 'optparse'
require 'grpc'
require_relative 'gunzip'
require 'google/protobuf/well_known_types'
require 'google/rpc/error_details_pb'
require 'google/rpc/status_pb'
require 'kv_pb'
require 'stock_pb'

# A usage error: exit code 2.
class UsageError < StandardError; end

V1 = Stock::V1
# method name => [route, request class, response class, kind]
METHODS = {
  'Get' => ['/stock.v1.Stock/Get', V1::GetRequest, V1::GetResponse, :unary],
  'Put' => ['/stock.v1.Stock/Put', V1::PutRequest, V1::Empty, :unary],
  'Monitor' => ['/stock.v1.Stock/Monitor', V1::WatchRequest, V1::WatchEvent, :server_stream],
  'Batch' => ['/stock.v1.Stock/Batch', V1::BatchItem, V1::BatchSummary, :client_stream],
  'Trade' => ['/stock.v1.Stock/Trade', V1::TradeOrder, V1::TradeFill, :bidi],
  'Inventory' => ['/stock.v1.Stock/Inventory', V1::Empty, V1::InventoryStatus, :unary],
  'Audit' => ['/stock.v1.Stock/Audit', V1::Empty, V1::Empty, :unary],
  'Ledger.Balance' => ['/stock.v1.Ledger/Balance', V1::Empty, V1::Empty, :unary],
  # The legacy service of kv.proto (package proto: the Ruby module Proto).
  'proto.KV.Get' => ['/proto.KV/Get', Proto::GetRequest, Proto::GetResponse, :unary],
  'proto.KV.Put' => ['/proto.KV/Put', Proto::PutRequest, Proto::Empty, :unary]
}.freeze
TLS_MODES = %w[none server mtls].freeze
CONNECTION_FIELDS = %w[server tls_mode ca_file cert_file key_file server_name keepalive_ms keepalive_timeout_ms].freeze
# The fields of a script step (CONTRACT.md's step table); any other is a usage error.
STEP_FIELDS = %w[id method request requests metadata timeout_ms compression connection after_first copies
                 read_pause_ms lane cancel_after_ms cancel_after_messages fill bench].freeze
# The stack's status code enum, by value.
CODE_NAMES = GRPC::Core::StatusCodes.constants.to_h { |name| [GRPC::Core::StatusCodes.const_get(name), name.to_s] }
# connection (a Hash of CONNECTION_FIELDS) => its stub (one channel each)
CHANNELS = {} # rubocop:disable Style/MutableConstant
CHANNELS_LOCK = Mutex.new
# Each output line is written whole under this lock (lanes and copies print at once).
OUTPUT_LOCK = Mutex.new

# grpc-ruby retries a blocking call that a signal interrupts, so the steps run
# on worker threads while the main thread stays free to handle signals: the
# reader hands each step to its lane (a Queue and a thread, made on its
# first step), then at stdin's end waits for every lane.
def main
  $stdout.sync = true
  { 'INT' => 130, 'TERM' => 143 }.each { |sig, code| Signal.trap(sig) { exit!(code) } }
  worker = Thread.new do
    default = parse_args(ARGV)
    channel_for(default) # the default connection's files are read at once: exit 1 when one is unreadable
    lanes = {} # lane => [Queue of steps, its thread]
    $stdin.each_line do |line|
      next if line.strip.empty?

      step = parse_step(line, default)
      (lanes[step['lane'] || 0] ||= start_lane).first << step
    end
    lanes.each_value { |queue, _| queue.close }
    lanes.each_value { |_, thread| thread.value } # a lane's error (e.g. EPIPE) is raised here
    0
  rescue UsageError => e
    warn "client: #{e.message}"
    2
  rescue GRPC::Unavailable => e
    warn "client: #{e.details}"
    1
  rescue SystemCallError, IOError => e
    warn "client: #{e.message}"
    1
  end
  worker.report_on_exception = false
  exit worker.value
end

# A lane: a thread running the steps of its Queue in order until the Queue is closed and drained.
def start_lane
  queue = Queue.new
  thread = Thread.new do
    while (step = queue.pop)
      run_step(step)
    end
  end
  thread.report_on_exception = false
  [queue, thread]
end

# The default connection, as a Hash with the keys of a step's `connection`.
def parse_args(argv)
  opts = { 'tls_mode' => 'none' }
  parser = OptionParser.new do |o|
    o.on('--server HOST:PORT|unix:/PATH') { |v| opts['server'] = v }
    o.on('--tls-mode MODE', TLS_MODES) { |v| opts['tls_mode'] = v }
    o.on('--ca-file F') { |v| opts['ca_file'] = v }
    o.on('--cert-file F') { |v| opts['cert_file'] = v }
    o.on('--key-file F') { |v| opts['key_file'] = v }
    o.on('--server-name NAME') { |v| opts['server_name'] = v }
    o.on('--keepalive-ms N', Integer) { |v| opts['keepalive_ms'] = v }
    o.on('--keepalive-timeout-ms N', Integer) { |v| opts['keepalive_timeout_ms'] = v }
  end
  rest = parser.parse(argv)
  raise UsageError, 'the command must be `script`' unless rest == ['script']

  check_connection(opts)
rescue OptionParser::ParseError => e
  raise UsageError, e.message
end

# A connection's fields, checked; returned as they are (unset fields absent).
def check_connection(conn)
  raise UsageError, 'a connection needs a server' unless conn['server'].is_a?(String)
  raise UsageError, "unknown connection field in #{conn.keys}" unless (conn.keys - CONNECTION_FIELDS).empty?
  raise UsageError, "tls_mode must be one of #{TLS_MODES}" unless TLS_MODES.include?(conn['tls_mode'])

  %w[keepalive_ms keepalive_timeout_ms].each do |field|
    raise UsageError, "#{field} must be an integer" unless conn[field].nil? || conn[field].is_a?(Integer)
  end

  needed = { 'none' => [], 'server' => ['ca_file'], 'mtls' => %w[ca_file cert_file key_file] }
  missing = needed[conn['tls_mode']].reject { |field| conn[field] }
  raise UsageError, "tls_mode #{conn['tls_mode']} needs #{missing.join(', ')}" unless missing.empty?

  conn
end

# One stdin line (or an after_first entry) => a step with its request
# messages decoded, metadata ready to send (-bin values decoded) and its
# connection (the default one when it names none).
def parse_step(line, default)
  raw = line.is_a?(String) ? JSON.parse(line) : line
  raise UsageError, 'a script step must be a JSON object' unless raw.is_a?(Hash)

  unknown = raw.keys - STEP_FIELDS
  unless unknown.empty?
    raise UsageError, "step #{JSON.generate(raw['id'])}: unknown field #{JSON.generate(unknown.first)}"
  end

  _, req_cls, = METHODS.fetch(raw['method']) { raise UsageError, "unknown method #{raw['method'].inspect}" }
  metadata = raw.fetch('metadata', {})
  raise UsageError, '"metadata" must be an object' unless metadata.is_a?(Hash)

  requests = raw.fetch('requests', [])
  raise UsageError, '"requests" must be an array' unless requests.is_a?(Array)

  lane = raw.fetch('lane', 0)
  raise UsageError, '"lane" must be an integer >= 0' unless lane.is_a?(Integer) && !lane.negative?

  compression = raw.fetch('compression', 'identity')
  unless %w[gzip identity].include?(compression)
    raise UsageError, "\"compression\" must be gzip or identity, not #{JSON.generate(compression)}"
  end

  after_first = raw.fetch('after_first', [])
  raise UsageError, '"after_first" is for Monitor only' unless after_first == [] || raw['method'] == 'Monitor'
  unless [nil, 0].include?(raw['cancel_after_messages']) || raw['method'] == 'Monitor'
    raise UsageError, '"cancel_after_messages" is for Monitor only'
  end

  check_bench(raw['bench']) if raw.key?('bench')

  connection = raw['connection'] && check_connection({ 'tls_mode' => 'none' }.merge(raw['connection']))
  request = decode_message(req_cls, raw['request'])
  requests = requests.map { |r| decode_message(req_cls, r) }
  fill_values(raw['method'], raw['method'] == 'Batch' ? requests : [request], raw['fill'])
  raw.merge(request:, requests:,
            metadata: metadata.to_h { |k, v| wire_metadata(k.downcase, v.to_s) },
            connection: connection || default,
            after_first: after_first.map { |s| parse_step(s, default) })
rescue JSON::ParserError, TypeError, NoMethodError => e
  raise UsageError, "invalid step: #{e.message}"
end

# A step's `bench` object: exactly duration_ms (an integer >= 0) and concurrency (an integer >= 1).
def check_bench(bench)
  unless bench.is_a?(Hash) && bench.keys.sort == %w[concurrency duration_ms]
    raise UsageError, "\"bench\" must be {\"duration_ms\": D, \"concurrency\": C}, not #{JSON.generate(bench)}"
  end

  duration, concurrency = bench.values_at('duration_ms', 'concurrency')
  raise UsageError, 'bench: duration_ms must be an integer >= 0' unless duration.is_a?(Integer) && !duration.negative?
  raise UsageError, 'bench: concurrency must be an integer >= 1' unless concurrency.is_a?(Integer) && concurrency >= 1
end

def decode_message(cls, json)
  json = {} if json.nil?
  raise UsageError, "not a JSON object for #{cls.descriptor.name}: #{json}" unless json.is_a?(Hash)

  cls.decode_json(JSON.generate(json))
rescue Google::Protobuf::ParseError => e
  raise UsageError, "invalid #{cls.descriptor.name}: #{e.message}"
end

# A step's `fill` entries: the `value` of messages[request] (the `request`
# of a Put, the `requests` of a Batch) becomes the bytes of `repeat` (base64)
# repeated `times` times, built in one allocation (String#*).
def fill_values(method, messages, fills)
  return if fills.nil?
  raise UsageError, '"fill" is for Put and Batch only' unless %w[Put Batch].include?(method)
  raise UsageError, '"fill" must be an array' unless fills.is_a?(Array)

  fills.each do |entry|
    unless entry.is_a?(Hash) && entry.keys.sort == %w[repeat request times]
      raise UsageError, "a fill entry needs exactly request, repeat and times: #{JSON.generate(entry)}"
    end

    at, repeat, times = entry.values_at('request', 'repeat', 'times')
    unless at.is_a?(Integer) && at >= 0 && at < messages.size
      raise UsageError, "fill: no request message #{JSON.generate(at)} (the step has #{messages.size})"
    end
    unless times.is_a?(Integer) && !times.negative?
      raise UsageError, "fill: times must be an integer >= 0, not #{JSON.generate(times)}"
    end

    messages[at].value = fill_unit(repeat) * times
  end
end

# A fill entry's `repeat`, decoded.
def fill_unit(repeat)
  raise ArgumentError unless repeat.is_a?(String)

  Base64.strict_decode64(repeat)
rescue ArgumentError
  raise UsageError, "fill: repeat is not base64: #{JSON.generate(repeat)}"
end

# A -bin key's base64 value is sent as its bytes (binary metadata).
def wire_metadata(key, value)
  [key, key.end_with?('-bin') ? Base64.strict_decode64(value) : value]
rescue ArgumentError
  raise UsageError, "metadata #{key}: the value is not base64"
end

# The connection's stub, made on first use and reused. The channel leaves
# response decompression to Gunzip, which records it. With keepalive_ms the
# core pings every keepalive_ms, also without calls and without a ping limit
# (max_pings_without_data 0). A certificate file that cannot be read fails
# the call that needs it: UNAVAILABLE. A `unix:` server (unix:/PATH or
# unix:///PATH) is a target the core dials itself, as a Unix socket; its
# authority, and with TLS the name verified and sent as SNI, is server_name,
# else localhost (grpc.default_authority and grpc.ssl_target_name_override).
def channel_for(conn)
  CHANNELS_LOCK.synchronize do
    CHANNELS[conn] ||= begin
      args = { 'grpc.per_message_decompression' => 0 }
      tls_name = conn['server_name']
      if conn['server'].start_with?('unix:')
        tls_name ||= 'localhost'
        args['grpc.default_authority'] = tls_name
      end
      if conn['keepalive_ms']
        args.merge!('grpc.keepalive_time_ms' => conn['keepalive_ms'], 'grpc.keepalive_permit_without_calls' => 1,
                    'grpc.http2.max_pings_without_data' => 0)
        args['grpc.keepalive_timeout_ms'] = conn['keepalive_timeout_ms'] if conn['keepalive_timeout_ms']
      end
      creds = :this_channel_is_insecure
      if conn['tls_mode'] != 'none'
        pems = %w[ca_file key_file cert_file].map { |field| read_pem(conn, field) }
        creds = GRPC::Core::ChannelCredentials.new(*pems.compact)
        args[GRPC::Core::Channel::SSL_TARGET] = tls_name if tls_name
      end
      GRPC::ClientStub.new(conn['server'], creds, channel_args: args)
    end
  end
end

def read_pem(conn, field)
  return nil if field != 'ca_file' && conn['tls_mode'] != 'mtls'

  File.read(conn[field])
rescue SystemCallError => e
  raise GRPC::Unavailable, "cannot read #{field}: #{e.message}"
end

# With copies, that many calls at once on the one channel, each on its own
# thread (the core queues the streams past the connection's limit), copy k's
# lines under ID*k.
def run_step(step)
  id = step['id'].to_s
  return run_bench(step, id) if step['bench']

  copies = step['copies'].to_i
  return run_call(step, id) unless copies > 1

  copies.times.map { |k| Thread.new { run_call(step, "#{id}*#{k}") } }.each(&:value)
end

# One call of a step, its lines under id. read_pause_ms: a slow reader, the
# next message is asked of the core (grpc-ruby reads one message per batch)
# only after the pause. cancel_after_ms: the call's own cancel
# (Operation#cancel) on a timer that is killed when the call ends first.
# cancel_after_messages: the same cancel right after that many messages were
# printed; the read loop then gets no message, only the CANCELLED status.
def run_call(step, id)
  route, req_cls, resp_cls, kind = METHODS.fetch(step['method'])
  pause = step['read_pause_ms'].to_i / 1000.0
  cancel_ms = step['cancel_after_ms'].to_i
  marshal = ->(m) { req_cls.encode(m) }
  unmarshal = Gunzip.new(resp_cls.method(:decode))
  metadata = step[:metadata].dup
  metadata[GRPC::Core::MetadataKeys::COMPRESSION_REQUEST_ALGORITHM] = 'gzip' if step['compression'] == 'gzip'
  timeout_ms = step['timeout_ms'].to_i
  args = { deadline: timeout_ms.positive? ? Time.now + (timeout_ms / 1000.0) : nil, metadata:, return_op: true }
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  op = nil
  canceller = nil
  started_op = lambda do |operation|
    op = operation
    return unless cancel_ms.positive?

    canceller = Thread.new do
      sleep(cancel_ms / 1000.0)
      operation.cancel
    end
  end
  begin
    stub = channel_for(step[:connection])
    case kind
    when :unary
      # The core's batch (send, close, receive one message and the status) ends OK without a message when
      # the server sent none: ActiveCall#get_message_from_batch_result answers nil, and there is no message to
      # print. A second message keeps the status from arriving (the core publishes it once every message was
      # read), so the call ends at its deadline.
      started_op.call(stub.request_response(route, step[:request], marshal, unmarshal, **args))
      response = op.execute
      emit_message(id, response) unless response.nil?
    when :server_stream
      # Same wire protocol; grpc-ruby 1.51's server_streamer turns a deadline
      # that ends the call before any header into a local CallError.
      received = 0
      cancel_after = step['cancel_after_messages'].to_i
      started_op.call(stub.bidi_streamer(route, [step[:request]], marshal, unmarshal, **args) do |msg|
        next if cancel_after.positive? && received >= cancel_after # cancelled: read no more

        emit_message(id, msg)
        received += 1
        step[:after_first].each { |s| run_step(s) } if received == 1
        next op.cancel if received == cancel_after

        sleep(pause) if pause.positive?
      end)
      op.execute
    when :client_stream
      started_op.call(stub.client_streamer(route, step[:requests], marshal, unmarshal, **args))
      response = op.execute # nil as for :unary when the server ended OK without its message
      emit_message(id, response) unless response.nil?
    when :bidi
      # Lock-step: the next order is released to the sending thread only
      # after the previous order's fill was printed (and the pause over).
      orders = step[:requests].each
      queue = Queue.new
      release = lambda do
        queue << orders.next
      rescue StopIteration
        queue << :done
      end
      outgoing = Enumerator.new do |y|
        while (order = queue.pop) != :done
          y << order
        end
      end
      started_op.call(stub.bidi_streamer(route, outgoing, marshal, unmarshal, **args) do |fill|
        emit_message(id, fill)
        sleep(pause) if pause.positive?
        release.call
      end)
      release.call
      begin
        op.execute
      ensure
        queue << :done
      end
    end
    emit_status(id, started, 0, '', op, op&.trailing_metadata, unmarshal.encoding)
  rescue GRPC::BadStatus => e
    emit_status(id, started, e.code, e.details, op, e.metadata, unmarshal.encoding, e)
  rescue GRPC::Core::CallError => e
    emit_status(id, started, GRPC::Core::StatusCodes::UNKNOWN, e.message, op, op&.trailing_metadata,
                unmarshal.encoding)
  ensure
    canceller&.kill
  end
end

# The log-scale latency bucket of v whole microseconds (CONTRACT.md, "Bench steps").
def bucket(v)
  n = v.bit_length
  n <= 5 ? v : (16 * (n - 4)) + ((v >> (n - 5)) & 15)
end

# One lock-step Trade of a bench (run_call's, printing nothing): the next
# order goes to the sending thread only after the previous order's fill
# arrived; after the last order the stream is half-closed and read to its
# end. Returns the fills received.
def bench_trade(stub, route, orders, marshal, unmarshal, args)
  queue = Queue.new
  sent = 0
  received = 0
  release = lambda do
    queue << (sent < orders.size ? orders[sent] : :done)
    sent += 1
  end
  outgoing = Enumerator.new do |y|
    while (order = queue.pop) != :done
      y << order
    end
  end
  release.call
  begin
    stub.bidi_streamer(route, outgoing, marshal, unmarshal, **args) do
      received += 1
      release.call
    end
  ensure
    queue << :done
  end
  received
end

# A bench step: `concurrency` threads share the step's one stub, each running
# the step's call (printing nothing) again and again until duration_ms have
# passed since the step started; the blocking calls release the GVL, so that
# many calls are in flight at once. Each thread keeps its own counts and
# buckets, merged at the end into the one bench line.
def run_bench(step, id)
  route, req_cls, resp_cls, kind = METHODS.fetch(step['method'])
  marshal = ->(m) { req_cls.encode(m) }
  metadata = step[:metadata].dup
  metadata[GRPC::Core::MetadataKeys::COMPRESSION_REQUEST_ALGORITHM] = 'gzip' if step['compression'] == 'gzip'
  timeout = step['timeout_ms'].to_i / 1000.0
  request = step[:request]
  requests = step[:requests]
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
  stop = started + (step['bench']['duration_ms'] * 1_000_000)
  stub = begin
    channel_for(step[:connection])
  rescue GRPC::BadStatus => e
    e
  end
  workers = Array.new(step['bench']['concurrency']) do
    Thread.new do
      unmarshal = Gunzip.new(resp_cls.method(:decode)) # only gunzips: its encoding is not reported
      counts = { calls: 0, errors: 0, messages: 0, histogram: Hash.new(0), first_error: nil }
      while (t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)) < stop
        begin
          raise stub if stub.is_a?(Exception)

          args = { deadline: timeout.positive? ? Time.now + timeout : nil, metadata: }
          messages = case kind
                     when :unary
                       stub.request_response(route, request, marshal, unmarshal, **args)
                       1
                     when :server_stream
                       received = 0
                       stub.bidi_streamer(route, [request], marshal, unmarshal, **args) { received += 1 }
                       received
                     when :client_stream
                       stub.client_streamer(route, requests, marshal, unmarshal, **args)
                       requests.size
                     when :bidi
                       bench_trade(stub, route, requests, marshal, unmarshal, args)
                     end
          t1 = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
          counts[:calls] += 1
          counts[:messages] += messages
          counts[:histogram][bucket((t1 - t0) / 1000)] += 1
        rescue GRPC::BadStatus, GRPC::Core::CallError => e
          counts[:errors] += 1
          code = e.is_a?(GRPC::BadStatus) ? e.code : GRPC::Core::StatusCodes::UNKNOWN
          counts[:first_error] ||= [Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond), code,
                                    e.is_a?(GRPC::BadStatus) ? e.details : e.message]
        end
      end
      counts
    end
  end
  results = workers.map(&:value)
  elapsed_ms = (Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - started) / 1e6
  histogram = Hash.new(0)
  results.each { |r| r[:histogram].each { |b, n| histogram[b] += n } }
  bench = { 'calls' => results.sum { |r| r[:calls] }, 'errors' => results.sum { |r| r[:errors] },
            'messages' => results.sum { |r| r[:messages] }, 'elapsed_ms' => elapsed_ms.round(3),
            'histogram' => histogram.sort }
  first = results.filter_map { |r| r[:first_error] }.min_by(&:first)
  if first
    bench['first_error'] = { 'code' => CODE_NAMES.fetch(first[1], 'UNKNOWN'), 'message' => utf8(first[2].to_s) }
  end
  write_line("#{JSON.generate({ 'id' => id, 'bench' => bench })}\n")
end

def emit_message(id, msg)
  write_line("{\"id\":#{JSON.generate(id)},\"message\":#{msg.to_json}}\n")
end

# The status line: x-stock-* headers and trailers (-bin values base64),
# response_encoding as the call's Gunzip saw it, and the details of the
# google.rpc.Status an error carries (BadStatus#to_rpc_status), each printed
# by the protobuf JSON printer, which resolves an Any's @type in the
# generated pool (error_details_pb).
def emit_status(id, started, code, message, operation, trailers, response_encoding, error = nil)
  elapsed = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000.0
  details = begin
    error&.to_rpc_status&.details&.map { |any| JSON.parse(any.to_json) } || []
  rescue StandardError => e
    warn "client: step #{id}: cannot print the error details: #{e.message}"
    []
  end
  line = { 'id' => id, 'status' => { 'code' => CODE_NAMES.fetch(code, 'UNKNOWN'), 'message' => utf8(message.to_s) },
           'headers' => stock_metadata(operation&.metadata), 'trailers' => stock_metadata(trailers),
           'elapsed_ms' => elapsed.round(3), 'response_encoding' => response_encoding, 'details' => details }
  write_line("#{JSON.generate(line)}\n")
end

def write_line(line)
  OUTPUT_LOCK.synchronize do
    $stdout.write(line)
    $stdout.flush
  end
end

def stock_metadata(metadata)
  (metadata || {}).each_with_object({}) do |(k, v), out|
    key = k.to_s.downcase
    next unless key.start_with?('x-stock-')

    values = Array(v).map(&:to_s)
    out[key] = key.end_with?('-bin') ? values.map { |b| Base64.strict_encode64(b) }.join(',') : utf8(values.join(','))
  end
end

def utf8(str)
  s = str.dup.force_encoding(Encoding::UTF_8)
  s.valid_encoding? ? s : s.scrub
end

main
