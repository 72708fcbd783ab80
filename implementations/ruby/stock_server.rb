# frozen_string_literal: true

# stock.v1.Stock (and legacy proto.KV) server over the grpc gem (see ../../CONTRACT.md).
$LOAD_PATH.unshift(File.join(__dir__, 'gen'))

require 'optparse'
require 'grpc'
require_relative 'gunzip'
require_relative 'reflection'
require 'grpc/health/checker'
require 'google/protobuf/well_known_types'
require 'google/rpc/error_details_pb'
require 'google/rpc/status_pb'
require 'stock_services_pb'
require 'kv_services_pb'

LANGUAGE = 'ruby'
STACK = "grpc-ruby #{GRPC::VERSION}".freeze
MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 1_048_576
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263A and non-BMP \u{1F608}\t\n"
STOCK_PREFIX = '/stock.v1.Stock/'
KV_PREFIX = '/proto.KV/'
DEADLINE_GRACE_S = 1.0
MAX_STREAMS = 100 # concurrent streams per connection
Codes = GRPC::Core::StatusCodes

def usage_exit(msg)
  warn "server: #{msg}"
  exit 2
end

def fail_exit(msg)
  warn "server: #{msg}"
  exit 1
end

# A registered Monitor: the store pushes matching events into it.
class Watcher
  attr_reader :pattern

  def initialize(pattern)
    @pattern = pattern
    @events = []
    @closed = false
    @mutex = Mutex.new
    @cond = ConditionVariable.new
  end

  def matches?(key)
    return key.start_with?(@pattern[0...-1]) if @pattern.end_with?('*')

    key == @pattern
  end

  def push(event)
    @mutex.synchronize do
      @events << event
      @cond.signal
    end
  end

  def close
    @mutex.synchronize do
      @closed = true
      @cond.signal
    end
  end

  # Next event; :closed once closed (the call ended), :deadline once past
  # the deadline (a Time, or nil for none).
  def pop(deadline)
    @mutex.synchronize do
      loop do
        return @events.shift unless @events.empty?
        return :closed if @closed

        if deadline
          left = deadline - Time.now
          return :deadline if left <= 0

          @cond.wait(@mutex, left)
        else
          @cond.wait(@mutex)
        end
      end
    end
  end
end

# The in-memory store and its watch registry, guarded by one mutex.
class Store
  def initialize
    @mutex = Mutex.new
    @data = {} # key => [value, version]
    @watchers = []
  end

  def get(key)
    @mutex.synchronize { @data[key] }
  end

  # items: [[key, value], ...]; returns [created, updated].
  def put_all(items)
    @mutex.synchronize do
      created = 0
      updated = 0
      items.each do |key, value|
        old = @data[key]
        old ? updated += 1 : created += 1
        version = old ? old[1] + 1 : 1
        @data[key] = [value, version]
        @watchers.each do |w|
          next unless w.matches?(key)

          w.push(Stock::V1::WatchEvent.new(key:, value:, version:, existing: false))
        end
      end
      [created, updated]
    end
  end

  # Registers the watcher and takes the snapshot in one critical section.
  def watch(watcher, include_existing)
    @mutex.synchronize do
      @watchers << watcher
      return [] unless include_existing

      @data.keys.select { |k| watcher.matches?(k) }.sort.map do |k|
        value, version = @data[k]
        Stock::V1::WatchEvent.new(key: k, value:, version:, existing: true)
      end
    end
  end

  def unwatch(watcher)
    @mutex.synchronize { @watchers.delete(watcher) }
    watcher.close
  end

  def stats
    @mutex.synchronize { [@data.size, @data.each_value.sum { |v, _| v.bytesize }] }
  end

  # How many registered (not yet ended) Monitors have a pattern starting with prefix.
  def open_watchers(prefix)
    @mutex.synchronize { @watchers.count { |w| w.pattern.start_with?(prefix) } }
  end
end

# A call's deadline as a Time, or nil: no deadline arrives as INFINITE_FUTURE,
# which converts to a pre-1970 Time.
def deadline_of(call)
  deadline = call.deadline
  deadline.is_a?(Time) && deadline.to_i.positive? ? deadline : nil
end

# Stops a handler whose call is over (its client cancelled it or its deadline
# passed). grpc-ruby gives a server handler no cancellation flag (the views'
# cancelled? reads a status that only client calls get), but the core fails
# every send on a call that is over: so the response headers are sent here and
# a failure (Core::CallError) ends the handler, the library then sending
# nothing. A passed deadline is the stack's OutOfTime (DEADLINE_EXCEEDED).
def ensure_live(call)
  deadline = deadline_of(call)
  raise GRPC::Core::OutOfTime if deadline && Time.now >= deadline

  call.send_initial_metadata
end

# The Gunzip of a server call (grpc-ruby offers no accessor for a call's
# unmarshaller; the view wraps the active call that holds it).
def gunzip_of(call)
  unmarshal = call.instance_variable_get(:@wrapped)&.instance_variable_get(:@unmarshal)
  unmarshal.is_a?(Gunzip) ? unmarshal : nil
end

# Extends a service's rpc descriptors: the server asks each for a new request
# unmarshaller (unmarshal_proc(:input)) for every call; it gets a Gunzip.
module GunzipRequests
  def self.into(service_class)
    service_class.rpc_descs.each_value { |desc| desc.extend(self) }
  end

  def unmarshal_proc(target)
    target == :input ? Gunzip.new(super) : super
  end
end

# The test hooks of one call, read from its request metadata when its
# handler starts (-bin values arrive as their bytes).
class Hooks
  attr_reader :echo, :delay_ms, :fail_code, :fail_message, :fail_after, :repeat_value

  # The response headers the hooks ask for, sent with the call's initial
  # metadata (the server's connect_md_proc). x-stock-compress sets the call's
  # response compression: the stack's per-call algorithm key in that metadata.
  def self.headers(metadata)
    md = ->(k) { Array(metadata[k]).first }
    headers = { 'x-stock-echo' => md.call('x-stock-echo'), 'x-stock-echo-bin' => md.call('x-stock-echo-bin'),
                'x-stock-echo-header' => md.call('x-stock-echo-header') }.compact
    headers[GRPC::Core::MetadataKeys::COMPRESSION_REQUEST_ALGORITHM] = 'gzip' if md.call('x-stock-compress') == 'gzip'
    headers
  end

  def initialize(call, store)
    md = ->(k) { Array(call.metadata[k]).first }
    @store = store
    @gunzip = md.call('x-stock-report-encoding') == 'true' ? gunzip_of(call) : nil
    @echo = md.call('x-stock-echo')
    @echo_bin = md.call('x-stock-echo-bin')
    @echo_trailer = md.call('x-stock-echo-trailer')
    @deadline_ms = md.call('x-stock-report-deadline') == 'true' ? ms_left(deadline_of(call)) : nil
    @watchers_prefix = md.call('x-stock-report-watchers')
    @delay_ms = md.call('x-stock-delay-ms').to_i
    special = md.call('x-stock-fail-special') == 'true'
    code_name = md.call('x-stock-fail')
    @fail_code = code_name ? Codes.const_get(code_name) : nil
    @fail_code ||= Codes::UNKNOWN if special
    @fail_message = forced_message(md, special, code_name)
    @fail_after = md.call('x-stock-fail-after').to_i
    @repeat_value = [md.call('x-stock-repeat-value').to_i, 1].max
  end

  def trailers
    { 'x-stock-echo' => @echo, 'x-stock-echo-bin' => @echo_bin, 'x-stock-echo-trailer' => @echo_trailer,
      'x-stock-request-encoding' => @gunzip&.encoding, 'x-stock-deadline-ms' => @deadline_ms,
      'x-stock-watchers' => @watchers }.compact
  end

  # The call's error; with a detail (a google.rpc message), grpc-ruby's rich
  # error: a google.rpc.Status of the same code and message holding it packed
  # in an Any, sent as the grpc-status-details-bin trailer (what the client's
  # BadStatus#to_rpc_status reads back).
  def error(code, message, detail = nil)
    metadata = trailers
    if detail
      status = Google::Rpc::Status.new(code:, message:, details: [Google::Protobuf::Any.pack(detail)])
      metadata['grpc-status-details-bin'] = Google::Rpc::Status.encode(status)
    end
    GRPC::BadStatus.new_status_exception(code, message, metadata)
  end

  # INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest
  # whose one field violation names the field.
  def bad_request(field, message)
    violation = Google::Rpc::BadRequest::FieldViolation.new(field:, description: message)
    error(Codes::INVALID_ARGUMENT, message, Google::Rpc::BadRequest.new(field_violations: [violation]))
  end

  # The failure x-stock-fail forces, with a google.rpc.ErrorInfo.
  def forced_error
    error(@fail_code, @fail_message, Google::Rpc::ErrorInfo.new(reason: 'FORCED', domain: 'stock.v1'))
  end

  # Applies the delay and the trailers (on success; error() adds them to a
  # failure), watchers counted after the delay; the headers are sent by the
  # server's connect_md_proc.
  def start(call)
    sleep(@delay_ms / 1000.0) if @delay_ms.positive?
    @watchers = @store.open_watchers(@watchers_prefix).to_s if @watchers_prefix
    @output_metadata = call.output_metadata
    @output_metadata.merge!(trailers)
  end

  # Sets the trailers again once the request stream was read (the encoding
  # it arrived with).
  def update_trailers
    @output_metadata.merge!(trailers)
  end

  private

  def ms_left(deadline)
    deadline ? ((deadline - Time.now) * 1000).floor.to_s : 'none'
  end

  # x-stock-fail-message-bin's bytes are the message as they are, read as UTF-8.
  def forced_message(value_of, special, code_name)
    return SPECIAL_MESSAGE if special

    bytes = value_of.call('x-stock-fail-message-bin')
    return bytes.dup.force_encoding(Encoding::UTF_8) if bytes

    value_of.call('x-stock-fail-message') || "forced #{code_name}"
  end
end

# The stock.v1.Stock service.
class StockService < Stock::V1::Stock::Service
  def initialize(store)
    super()
    @store = store
  end

  def get(req, call)
    hooks = unary_hooks(call)
    check_key(hooks, req.key)
    entry = @store.get(req.key)
    raise hooks.error(Codes::NOT_FOUND, "key not found: #{req.key}") unless entry

    Stock::V1::GetResponse.new(value: entry[0] * hooks.repeat_value, version: entry[1])
  end

  def put(req, call)
    hooks = unary_hooks(call)
    check_key(hooks, req.key)
    check_value(hooks, req.value)
    @store.put_all([[req.key, req.value]])
    Stock::V1::Empty.new
  end

  def inventory(_req, call)
    unary_hooks(call)
    count, bytes = @store.stats
    Stock::V1::InventoryStatus.new(key_count: count, total_value_bytes: bytes,
                                   language: LANGUAGE, stack: STACK)
  end

  def monitor(req, call)
    hooks = Hooks.new(call, @store)
    hooks.start(call)
    ensure_live(call)
    raise hooks.forced_error if hooks.fail_code && hooks.fail_after <= 0
    raise hooks.bad_request('pattern', 'pattern must not be empty') if req.pattern.empty?
    raise hooks.bad_request('max_events', 'max_events must not be negative') if req.max_events.negative?

    watcher = Watcher.new(req.pattern)
    existing = @store.watch(watcher, req.include_existing)
    watch_call_end(call, watcher) if req.max_events.zero?
    Enumerator.new { |out| stream_events(out, watcher, existing, req.max_events, hooks, deadline_of(call)) }
  end

  def batch(call)
    hooks = Hooks.new(call, @store)
    hooks.start(call)
    items = call.each_remote_read.map { |item| [item.key, item.value] }
    hooks.update_trailers
    # A request stream that a cancel or the deadline ended reads as a plain
    # end here: this check stops such a call before anything is applied.
    ensure_live(call)
    raise hooks.forced_error if hooks.fail_code

    items.each do |key, value|
      check_key(hooks, key)
      check_value(hooks, value)
    end
    created, updated = @store.put_all(items)
    Stock::V1::BatchSummary.new(items: items.size, value_bytes: items.sum { |_, v| v.bytesize },
                                created:, updated:)
  end

  def trade(orders, call)
    hooks = Hooks.new(call, @store)
    hooks.start(call)
    ensure_live(call)
    raise hooks.forced_error if hooks.fail_code && hooks.fail_after <= 0

    Enumerator.new { |out| fill_orders(out, orders, hooks) }
  end

  private

  def unary_hooks(call)
    hooks = Hooks.new(call, @store)
    hooks.start(call)
    ensure_live(call)
    raise hooks.forced_error if hooks.fail_code

    hooks
  end

  def check_key(hooks, key)
    return if key.bytesize.between?(1, MAX_KEY_BYTES)

    raise hooks.bad_request('key', "key must be 1 to #{MAX_KEY_BYTES} bytes, got #{key.bytesize}")
  end

  def check_value(hooks, value)
    return if value.bytesize <= MAX_VALUE_BYTES

    raise hooks.bad_request('value', "value must be at most #{MAX_VALUE_BYTES} bytes, got #{value.bytesize}")
  end

  def stream_events(out, watcher, existing, max_events, hooks, deadline)
    sent = 0
    loop do
      raise hooks.forced_error if hooks.fail_code && sent >= hooks.fail_after
      break if max_events.positive? && sent >= max_events

      event = existing.shift || watcher.pop(deadline)
      if %i[deadline closed].include?(event)
        # The call is over: the watch ends now. The core ends the call itself
        # (at its deadline, or on the client's cancel); a status sent at that
        # same moment races it (grpc 1.51 then can write frames that make an
        # h2 client drop the whole connection), so the status is sent after a
        # grace, when the call is long closed and it is a no-op.
        @store.unwatch(watcher)
        sleep(DEADLINE_GRACE_S)
        raise hooks.error(Codes::DEADLINE_EXCEEDED, 'deadline exceeded') if event == :deadline

        raise hooks.error(Codes::CANCELLED, 'call ended')
      end

      out << event
      sent += 1
    end
  ensure
    @store.unwatch(watcher)
  end

  # A never-ending Monitor learns of its client's cancel or deadline from the
  # call's close; it is never finished with OK, so this op cannot clash.
  def watch_call_end(call, watcher)
    core_call = call.instance_variable_get(:@wrapped)&.instance_variable_get(:@call)
    return unless core_call.is_a?(GRPC::Core::Call)

    Thread.new do
      core_call.run_batch(GRPC::Core::CallOps::RECV_CLOSE_ON_SERVER => nil)
    rescue StandardError => e
      warn "server: monitor close watch: #{e}"
    ensure
      @store.unwatch(watcher)
    end
  end

  def fill_orders(out, orders, hooks)
    sequence = 0
    positions = Hash.new(0)
    orders.each do |order|
      raise hooks.bad_request('quantity', "quantity must be > 0, got #{order.quantity}") if order.quantity <= 0

      sequence += 1
      delta = order.side == :BUY ? order.quantity : -order.quantity
      positions[order.symbol] += delta
      out << Stock::V1::TradeFill.new(order_id: order.order_id, symbol: order.symbol, side: order.side,
                                      quantity: order.quantity, price_cents: order.price_cents,
                                      sequence:, net_position: positions[order.symbol])
      raise hooks.forced_error if hooks.fail_code && sequence >= hooks.fail_after
    end
    hooks.update_trailers
  end
end

# The legacy proto.KV service (kv.proto): a thin adapter over StockService's
# own get and put, so validation, versions, Monitor events and the test hooks
# are those of stock.v1.Stock, over the same store.
class KvService < Proto::KV::Service
  def initialize(stock)
    super()
    @stock = stock
  end

  def get(req, call)
    Proto::GetResponse.new(value: @stock.get(Stock::V1::GetRequest.new(key: req.key), call).value)
  end

  def put(req, call)
    @stock.put(Stock::V1::PutRequest.new(key: req.key, value: req.value), call)
    Proto::Empty.new
  end
end

def parse_args(argv)
  opts = { host: '127.0.0.1', tls_mode: 'none' }
  parser = OptionParser.new do |o|
    o.on('--port N', Integer) { |v| opts[:port] = v }
    o.on('--host HOST') { |v| opts[:host] = v }
    o.on('--tls-mode MODE', %w[none server mtls]) { |v| opts[:tls_mode] = v }
    o.on('--cert-file F') { |v| opts[:cert_file] = v }
    o.on('--key-file F') { |v| opts[:key_file] = v }
    o.on('--ca-file F') { |v| opts[:ca_file] = v }
  end
  begin
    rest = parser.parse(argv)
  rescue OptionParser::ParseError => e
    usage_exit(e.message)
  end
  usage_exit("unexpected argument #{rest.first}") unless rest.empty?
  usage_exit('--port is required') unless opts[:port]
  opts
end

def read_file(path, what)
  fail_exit("#{what} is required for this --tls-mode") unless path
  File.read(path)
rescue SystemCallError => e
  fail_exit("cannot read #{what}: #{e.message}")
end

def server_credentials(opts)
  return :this_port_is_insecure if opts[:tls_mode] == 'none'

  pair = { private_key: read_file(opts[:key_file], '--key-file'),
           cert_chain: read_file(opts[:cert_file], '--cert-file') }
  return GRPC::Core::ServerCredentials.new(nil, [pair], false) if opts[:tls_mode] == 'server'

  GRPC::Core::ServerCredentials.new(read_file(opts[:ca_file], '--ca-file'), [pair], true)
end

def main
  opts = parse_args(ARGV)
  creds = server_credentials(opts)
  hook_headers = lambda do |method, metadata|
    method.to_s.start_with?(STOCK_PREFIX, KV_PREFIX) ? Hooks.headers(metadata) : {}
  end
  # The core leaves request decompression to Gunzip, which records it.
  # grpc-ruby 1.51 refuses a call that finds no idle pool thread
  # (RESOURCE_EXHAUSTED "No free threads in thread pool"; its
  # max_waiting_requests is ignored), so the transport's own stream limit
  # (SETTINGS_MAX_CONCURRENT_STREAMS, 100 as the reference's) makes clients
  # queue their calls past it, below the pool's size: the spare threads cover
  # a call that starts while the thread of one that just closed its stream is
  # still on its way back to the pool.
  server = GRPC::RpcServer.new(pool_size: MAX_STREAMS + 28, poll_period: 0.2, pool_keep_alive: 0.2,
                               connect_md_proc: hook_headers,
                               server_args: { 'grpc.per_message_decompression' => 0,
                                              'grpc.max_concurrent_streams' => MAX_STREAMS })
  served = [StockService, KvService, Grpc::Health::Checker]
  (served + [ReflectionV1, ReflectionV1alpha]).each { |cls| GunzipRequests.into(cls) }
  stock = StockService.new(Store.new)
  server.handle(stock)
  server.handle(KvService.new(stock))
  health = Grpc::Health::Checker.new
  serving = Grpc::Health::V1::HealthCheckResponse::ServingStatus::SERVING
  health.set_status_for_services(serving, '', 'stock.v1.Stock', 'proto.KV')
  server.handle(health)
  ReflectionService.serve(server, served)

  host = opts[:host].include?(':') ? "[#{opts[:host]}]" : opts[:host]
  address = "#{host}:#{opts[:port]}"
  begin
    port = server.add_http2_port(address, creds)
  rescue StandardError => e
    fail_exit("cannot listen on #{address}: #{e.message}")
  end
  fail_exit("cannot listen on #{address}") if port.nil? || port.zero?

  stop = Queue.new
  %w[TERM INT].each { |sig| Signal.trap(sig) { stop << sig } }
  Thread.new do
    $stdin.read
  rescue StandardError
    nil
  ensure
    stop << 'EOF'
  end
  Thread.new do
    server.run
  rescue StandardError => e
    warn "server: #{e.message}"
    stop << 'ERROR'
  end
  server.wait_till_running
  $stdout.puts "listening on #{opts[:host]}:#{port}"
  $stdout.flush

  stop.pop
  stopper = Thread.new { server.stop }
  stopper.join(0.7)
  $stdout.flush
  exit!(0)
end

main
