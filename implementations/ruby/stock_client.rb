# frozen_string_literal: true

# stock.v1.Stock client CLI over the grpc gem (see ../../CONTRACT.md).
$LOAD_PATH.unshift(File.join(__dir__, 'gen'))

require 'base64'
require 'json'
require 'optparse'
require 'grpc'
require_relative 'gunzip'
require 'google/protobuf/well_known_types'
require 'google/rpc/error_details_pb'
require 'google/rpc/status_pb'
require 'stock_pb'

# A usage error: exit code 2.
class UsageError < StandardError; end

CODE_NAMES = GRPC::Core::StatusCodes.constants.to_h do |name|
  [GRPC::Core::StatusCodes.const_get(name), name.to_s]
end.freeze

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
  'Ledger.Balance' => ['/stock.v1.Ledger/Balance', V1::Empty, V1::Empty, :unary]
}.freeze

def emit(obj)
  $stdout.write("#{JSON.generate(obj)}\n")
end

def emit_message(id, msg)
  $stdout.write("{\"id\":#{JSON.generate(id)},\"message\":#{msg.to_json}}\n")
end

# Received x-stock-* entries; -bin values (their bytes) printed base64.
def stock_md(metadata)
  (metadata || {}).each_with_object({}) do |(k, v), out|
    key = k.to_s.downcase
    next unless key.start_with?('x-stock-')

    values = Array(v).map(&:to_s)
    out[key] = key.end_with?('-bin') ? values.map { |b| Base64.strict_encode64(b) }.join(',') : utf8(values.join(','))
  end
end

# Request metadata to send: lower-case keys; a -bin key's base64 value is
# decoded and sent as its bytes (binary metadata).
def wire_md(metadata)
  metadata.to_h do |k, v|
    key = k.to_s.downcase
    next [key, v.to_s] unless key.end_with?('-bin')

    begin
      [key, Base64.strict_decode64(v.to_s)]
    rescue ArgumentError
      raise UsageError, "metadata #{key}: the value is not base64"
    end
  end
end

def utf8(str)
  s = str.dup.force_encoding(Encoding::UTF_8)
  s.valid_encoding? ? s : s.scrub
end

def decode_message(cls, json)
  json = {} if json.nil?
  raise UsageError, "not a JSON object for #{cls.descriptor.name}: #{json}" unless json.is_a?(Hash)

  cls.decode_json(JSON.generate(json))
rescue Google::Protobuf::ParseError, JSON::GeneratorError => e
  raise UsageError, "invalid #{cls.descriptor.name}: #{e.message}"
end

def parse_json_line(line)
  JSON.parse(line)
rescue JSON::ParserError => e
  raise UsageError, "invalid JSON line: #{e.message}"
end

# Runs calls on one channel and prints their output lines.
class Runner
  def initialize(stub, opts)
    @stub = stub
    @metadata = opts[:metadata]
    @timeout_ms = opts[:timeout_ms]
    @compression = opts[:compression]
  end

  # step: {'id', 'method', 'request', 'requests', 'metadata', 'timeout_ms',
  # 'compression', 'after_first', 'cancel_after_ms', 'copies',
  # 'read_pause_ms'}; requests may be an Enumerator of messages. With copies,
  # that many calls at once on the one channel, each on its own thread (the
  # core queues the streams past the connection's limit), copy k's lines under
  # ID*k.
  def run(step)
    id = step['id'].to_s
    copies = step['copies'].to_i
    return run_call(step, id) unless copies > 1

    copies.times.map { |k| Thread.new { run_call(step, "#{id}*#{k}") } }.each(&:value)
  end

  private

  # One call of a step, its lines under id. read_pause_ms: a slow reader, the
  # next message is asked of the core (grpc-ruby reads one message per batch)
  # only after the pause.
  def run_call(step, id)
    pause = step['read_pause_ms'].to_i / 1000.0
    route, req_cls, resp_cls, kind = METHODS.fetch(step['method']) do
      raise UsageError, "unknown method #{step['method'].inspect}"
    end
    marshal = ->(m) { req_cls.encode(m) }
    unmarshal = Gunzip.new(resp_cls.method(:decode))
    args = { deadline: deadline(step['timeout_ms']), metadata: call_metadata(step), return_op: true }
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    op = nil
    canceller = nil
    begin
      case kind
      when :unary
        op = @stub.request_response(route, step[:request], marshal, unmarshal, **args)
        canceller = cancel_later(op, step['cancel_after_ms'])
        emit_message(id, op.execute)
      when :client_stream
        op = @stub.client_streamer(route, step[:requests], marshal, unmarshal, **args)
        canceller = cancel_later(op, step['cancel_after_ms'])
        emit_message(id, op.execute)
      when :server_stream
        # Same wire protocol; grpc-ruby 1.51's server_streamer turns a deadline
        # that ends the call before any header into a local CallError.
        first = true
        op = @stub.bidi_streamer(route, [step[:request]], marshal, unmarshal, **args) do |msg|
          emit_message(id, msg)
          (step['after_first'] || []).each { |s| run(s) } if first
          first = false
          sleep(pause) if pause.positive?
        end
        canceller = cancel_later(op, step['cancel_after_ms'])
        op.execute
      when :bidi
        run_trade(id, route, step[:requests], marshal, unmarshal, args, pause) do |o|
          op = o
          canceller = cancel_later(o, step['cancel_after_ms'])
        end
      end
      finish(id, started, 0, '', op&.metadata, op&.trailing_metadata, unmarshal.encoding)
    rescue GRPC::BadStatus => e
      finish(id, started, e.code, e.details, op&.metadata, e.metadata, unmarshal.encoding, rich_details(id, e))
    rescue GRPC::Core::CallError => e
      finish(id, started, GRPC::Core::StatusCodes::UNKNOWN, e.message, op&.metadata, op&.trailing_metadata,
             unmarshal.encoding)
    ensure
      canceller&.kill
    end
  end

  # cancel_after_ms: the call's own cancel (Operation#cancel, reported as
  # CANCELLED) that many ms after it started, unless it ended before (the
  # timer is killed when it ends; a cancel of an ended call does nothing).
  def cancel_later(operation, after_ms)
    return unless after_ms.to_i.positive?

    Thread.new do
      sleep(after_ms.to_i / 1000.0)
      operation.cancel
    end
  end

  # Lock-step: the next order is released to the sending thread only after
  # the previous order's fill was printed (and the read pause, if any, over).
  def run_trade(id, route, orders, marshal, unmarshal, args, pause)
    orders = orders.each # each copy's own cursor over an Array of orders
    queue = Queue.new
    outgoing = Enumerator.new do |y|
      loop do
        order = queue.pop
        break if order == :done

        y << order
      end
    end
    release = lambda do
      order = orders.next
      queue << order
    rescue StopIteration
      queue << :done
    end
    op = @stub.bidi_streamer(route, outgoing, marshal, unmarshal, **args) do |fill|
      emit_message(id, fill)
      sleep(pause) if pause.positive?
      release.call
    end
    yield op
    release.call
    begin
      op.execute
    ensure
      queue << :done
    end
  end

  # The details of the google.rpc.Status a failed call carries in
  # grpc-status-details-bin (BadStatus#to_rpc_status), each printed by the
  # protobuf JSON printer, which resolves an Any's @type in the generated
  # descriptor pool (google.rpc.BadRequest, ErrorInfo, ...: error_details_pb).
  def rich_details(id, error)
    status = error.to_rpc_status
    return [] unless status

    status.details.map { |any| JSON.parse(any.to_json) }
  rescue StandardError => e
    warn "client: step #{id}: cannot print the error details: #{e.message}"
    []
  end

  # response_encoding: as the call's Gunzip saw its responses.
  def finish(id, started, code, message, headers, trailers, response_encoding, details = [])
    elapsed = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000.0
    emit({ 'id' => id,
           'status' => { 'code' => CODE_NAMES.fetch(code, 'UNKNOWN'), 'message' => utf8(message.to_s) },
           'headers' => stock_md(headers), 'trailers' => stock_md(trailers),
           'elapsed_ms' => elapsed.round(3), 'response_encoding' => response_encoding, 'details' => details })
  end

  def deadline(step_ms)
    ms = step_ms.to_i.positive? ? step_ms.to_i : @timeout_ms
    ms.positive? ? Time.now + (ms / 1000.0) : nil
  end

  def call_metadata(step)
    md = @metadata.merge(step['metadata'] || {})
    compression = step['compression'] || @compression
    md[GRPC::Core::MetadataKeys::COMPRESSION_REQUEST_ALGORITHM] = 'gzip' if compression == 'gzip'
    md
  end
end

# Turns a script line (a Hash) into a runnable step with decoded messages.
def prepare_step(raw)
  raise UsageError, 'a script step must be a JSON object' unless raw.is_a?(Hash)

  _, req_cls, = METHODS.fetch(raw['method']) { raise UsageError, "unknown method #{raw['method'].inspect}" }
  step = raw.dup
  raise UsageError, '"metadata" must be an object' unless (raw['metadata'] || {}).is_a?(Hash)

  step['metadata'] = wire_md(raw['metadata'] || {})
  step[:request] = decode_message(req_cls, raw['request'])
  requests = raw['requests'] || []
  raise UsageError, '"requests" must be an array' unless requests.is_a?(Array)

  decoded = requests.map { |r| decode_message(req_cls, r) }
  step[:requests] = decoded
  step['after_first'] = (raw['after_first'] || []).map { |s| prepare_step(s) }
  step
end

def stdin_messages(cls)
  Enumerator.new do |y|
    $stdin.each_line do |line|
      next if line.strip.empty?

      y << decode_message(cls, parse_json_line(line))
    end
  end
end

def command_step(command, args)
  need = ->(n) { raise UsageError, "#{command}: expected #{n} argument(s)" unless args.size == n }
  case command
  when 'get'
    need.call(1)
    { 'method' => 'Get', request: V1::GetRequest.new(key: args[0]) }
  when 'put'
    need.call(2)
    { 'method' => 'Put', request: V1::PutRequest.new(key: args[0], value: args[1].b) }
  when 'inventory'
    need.call(0)
    { 'method' => 'Inventory', request: V1::Empty.new }
  when 'monitor' then monitor_step(args)
  when 'batch' then batch_step(args)
  when 'trade'
    need.call(0)
    { 'method' => 'Trade', requests: stdin_messages(V1::TradeOrder) }
  else raise UsageError, "unknown command #{command.inspect}"
  end.merge('id' => command)
end

def monitor_step(args)
  req = V1::WatchRequest.new
  pattern = nil
  until args.empty?
    arg = args.shift
    case arg
    when '--max-events'
      value = args.shift
      raise UsageError, '--max-events needs an integer' unless value&.match?(/\A-?\d+\z/)

      req.max_events = value.to_i
    when '--include-existing' then req.include_existing = true
    else
      raise UsageError, "monitor: unexpected argument #{arg}" if pattern || arg.start_with?('--')

      pattern = arg
    end
  end
  raise UsageError, 'monitor: PATTERN is required' unless pattern

  req.pattern = pattern
  { 'method' => 'Monitor', request: req }
end

def batch_step(args)
  items = args.map do |arg|
    key, sep, value = arg.partition('=')
    raise UsageError, "batch: expected KEY=VALUE, got #{arg}" if sep.empty?

    V1::BatchItem.new(key:, value: value.b)
  end
  items = stdin_messages(V1::BatchItem).to_a if args.empty?
  { 'method' => 'Batch', requests: items }
end

def parse_options(argv)
  opts = { tls_mode: 'none', metadata: {}, timeout_ms: 0 }
  parser = OptionParser.new do |o|
    o.on('--server HOST:PORT') { |v| opts[:server] = v }
    o.on('--tls-mode MODE', %w[none server mtls]) { |v| opts[:tls_mode] = v }
    o.on('--ca-file F') { |v| opts[:ca_file] = v }
    o.on('--cert-file F') { |v| opts[:cert_file] = v }
    o.on('--key-file F') { |v| opts[:key_file] = v }
    o.on('--server-name NAME') { |v| opts[:server_name] = v }
    o.on('--timeout-ms N', Integer) { |v| opts[:timeout_ms] = v }
    o.on('--compression ALGO', %w[gzip identity none]) { |v| opts[:compression] = v }
    o.on('--metadata K=V') do |v|
      key, sep, value = v.partition('=')
      raise OptionParser::InvalidArgument, v if sep.empty? || key.empty?

      opts[:metadata][key.downcase] = value
    end
  end
  rest = parser.order(argv)
  opts[:metadata] = wire_md(opts[:metadata])
  raise UsageError, '--server is required' unless opts[:server]
  raise UsageError, 'a command is required' if rest.empty?

  [opts, rest.shift, rest]
rescue OptionParser::ParseError => e
  raise UsageError, e.message
end

def read_pem(path, what)
  raise UsageError, "#{what} is required for this --tls-mode" unless path

  File.read(path)
end

# The channel leaves response decompression to Gunzip, which records it.
def make_stub(opts)
  channel_args = { 'grpc.per_message_decompression' => 0 }
  creds = :this_channel_is_insecure
  if opts[:tls_mode] != 'none'
    ca = read_pem(opts[:ca_file], '--ca-file')
    creds = if opts[:tls_mode] == 'mtls'
              GRPC::Core::ChannelCredentials.new(ca, read_pem(opts[:key_file], '--key-file'),
                                                 read_pem(opts[:cert_file], '--cert-file'))
            else
              GRPC::Core::ChannelCredentials.new(ca)
            end
    channel_args[GRPC::Core::Channel::SSL_TARGET] = opts[:server_name] if opts[:server_name]
  end
  GRPC::ClientStub.new(opts[:server], creds, channel_args:)
end

# grpc-ruby retries a blocking call that a signal interrupts, so the calls run
# on a worker thread while the main thread stays free to handle signals.
def main
  $stdout.sync = true
  { 'INT' => 130, 'TERM' => 143 }.each { |sig, code| Signal.trap(sig) { exit!(code) } }
  worker = Thread.new { run_command }
  worker.report_on_exception = false
  exit worker.value
end

def run_command
  opts, command, args = parse_options(ARGV)
  step = command_step(command, args) unless command == 'script'
  runner = Runner.new(make_stub(opts), opts)
  if step
    runner.run(step)
  else
    $stdin.each_line do |line|
      next if line.strip.empty?

      runner.run(prepare_step(parse_json_line(line)))
    end
  end
  0
rescue UsageError => e
  warn "client: #{e.message}"
  2
rescue SystemCallError, IOError => e
  warn "client: #{e.message}"
  1
end

main
