# frozen_string_literal: true

# stock.v1.Stock (and legacy proto.KV) server over the grpc gem (see ../../CONTRACT.md).
$LOAD_PATH.unshift(File.join(__dir__, 'gen'))

require 'optparse'
require 'grpc'
require 'grpc/health/checker'
require 'stock_services_pb'
require 'kv_services_pb'
require_relative 'gunzip'
require_relative 'hooks'
require_relative 'reflection'
require_relative 'store'

STACK = "grpc-ruby #{GRPC::VERSION}".freeze
DEADLINE_GRACE_S = 1.0
MAX_STREAMS = 100 # concurrent streams per connection
CLIENTS = 4 # connections the pool serves at their stream limit at once

# Serves until SIGTERM, SIGINT or the end of stdin, then exits 0 within a
# second (open streams are cut off by the exit); exits 1 when it cannot serve.
def main
  opts = parse_args(ARGV)
  stop = Queue.new
  %w[TERM INT].each { |sig| Signal.trap(sig) { stop << sig } }
  Thread.new do
    $stdin.read
  ensure
    stop << 'EOF'
  end
  server = serve(opts, stop)
  stop.pop
  Thread.new { server.stop }.join(0.7)
  exit!(0)
rescue SystemCallError, RuntimeError => e
  warn "server: #{e.message}"
  exit 1
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
  rest = parser.parse(argv)
  raise OptionParser::NeedlessArgument, rest.first unless rest.empty?

  needed = { 'none' => [:port], 'server' => %i[port cert_file key_file], 'mtls' => %i[port cert_file key_file ca_file] }
  missing = needed[opts[:tls_mode]].reject { |key| opts[key] }.map { |key| "--#{key.to_s.tr('_', '-')}" }
  raise OptionParser::MissingArgument, missing.join(' ') unless missing.empty?

  opts
rescue OptionParser::ParseError => e
  warn "server: #{e.message}"
  exit 2
end

# The core leaves request decompression to Gunzip, which records it.
# grpc-ruby 1.51 refuses a call that finds no idle pool thread, so the
# transport's stream limit (SETTINGS_MAX_CONCURRENT_STREAMS) makes clients
# queue their calls below the pool's size, with spare threads for a call that
# starts while a just-finished call's thread is still going back to the pool.
# The pool holds CLIENTS connections at their limit at once: one server serves
# several clients at the same time.
def serve(opts, stop)
  creds = server_credentials(opts)
  store = Store.new
  server = GRPC::RpcServer.new(pool_size: (CLIENTS * MAX_STREAMS) + 28, poll_period: 0.2, pool_keep_alive: 0.2,
                               interceptors: [HooksInterceptor.new(store)],
                               server_args: { 'grpc.per_message_decompression' => 0,
                                              'grpc.max_concurrent_streams' => MAX_STREAMS,
                                              # the contract's header-list limit, soft and hard
                                              'grpc.max_metadata_size' => 16_384,
                                              'grpc.absolute_max_metadata_size' => 16_384 })
  served = [StockService, KvService, Grpc::Health::Checker]
  (served + [ReflectionV1, ReflectionV1alpha]).each { |cls| GunzipRequests.into(cls) }
  stock = StockService.new(store)
  server.handle(stock)
  server.handle(KvService.new(stock))
  health = Grpc::Health::Checker.new
  serving = Grpc::Health::V1::HealthCheckResponse::ServingStatus::SERVING
  health.set_status_for_services(serving, '', 'stock.v1.Stock', 'proto.KV')
  server.handle(health)
  ReflectionService.serve(server, served)

  host = opts[:host].include?(':') ? "[#{opts[:host]}]" : opts[:host]
  port = server.add_http2_port("#{host}:#{opts[:port]}", creds)
  raise "cannot listen on #{host}:#{opts[:port]}" if port.nil? || port.zero?

  Thread.new do
    server.run
  rescue StandardError => e
    warn "server: #{e.message}"
    stop << 'ERROR'
  end
  server.wait_till_running
  $stdout.puts "listening on #{opts[:host]}:#{port}"
  $stdout.flush
  server
end

# In mtls, a client certificate that verifies against the CA is required.
def server_credentials(opts)
  return :this_port_is_insecure if opts[:tls_mode] == 'none'

  pair = { private_key: File.read(opts[:key_file]), cert_chain: File.read(opts[:cert_file]) }
  ca = File.read(opts[:ca_file]) if opts[:tls_mode] == 'mtls'
  GRPC::Core::ServerCredentials.new(ca, [pair], opts[:tls_mode] == 'mtls')
end

# The stock.v1.Stock service; each call's hooks (call.hooks) were applied by
# the HooksInterceptor before its handler runs.
class StockService < Stock::V1::Stock::Service
  def initialize(store)
    super()
    @store = store
  end

  def get(req, call)
    validate_key(req.key)
    value, version = @store.get(req.key)
    raise GRPC::NotFound, "key not found: #{req.key}" unless value

    Stock::V1::GetResponse.new(value: value * call.hooks.repeat_value, version:)
  end

  def put(req, _call)
    validate_key(req.key)
    validate_value(req.value)
    @store.put(req.key, req.value)
    Stock::V1::Empty.new
  end

  # The events come from the watch's Queue, closed (a pop then answers nil)
  # when the call is over. Its status is then sent after a grace, when it is a
  # no-op: a status sent as the core ends the call races it (grpc 1.51 then can
  # write frames that make an h2 client drop the whole connection).
  def monitor(req, call)
    raise bad_request('pattern', 'pattern must not be empty') if req.pattern.empty?
    raise bad_request('max_events', 'max_events must not be negative') if req.max_events.negative?

    hooks = call.hooks
    events = @store.watch(req.pattern, req.include_existing)
    ender = end_watch_with_call(call, events, req.max_events.zero?)
    Enumerator.new do |out|
      sent = 0
      loop do
        raise forced_status(hooks) if hooks.fail_code && sent >= hooks.fail_after
        break if req.max_events.positive? && sent >= req.max_events

        out << (events.pop || call_over)
        sent += 1
      end
    ensure
      @store.unwatch(events)
      ender&.kill
    end
  end

  # A request stream that a cancel or the deadline ended reads as a plain
  # end here: ensure_live stops such a call before anything is applied.
  def batch(call)
    items = call.each_remote_read.map { |item| [item.key, item.value] }
    ensure_live(call)
    raise forced_status(call.hooks) if call.hooks.fail_code

    items.each do |key, value|
      validate_key(key)
      validate_value(value)
    end
    created, updated = @store.batch(items)
    Stock::V1::BatchSummary.new(items: items.size, value_bytes: items.sum { |_, v| v.bytesize }, created:, updated:)
  end

  def trade(orders, call)
    hooks = call.hooks
    positions = Hash.new(0)
    Enumerator.new do |out|
      orders.each.with_index(1) do |order, sequence|
        raise bad_request('quantity', "quantity must be > 0, got #{order.quantity}") if order.quantity <= 0

        positions[order.symbol] += order.side == :BUY ? order.quantity : -order.quantity
        out << Stock::V1::TradeFill.new(order_id: order.order_id, symbol: order.symbol, side: order.side,
                                        quantity: order.quantity, price_cents: order.price_cents,
                                        sequence:, net_position: positions[order.symbol])
        raise forced_status(hooks) if hooks.fail_code && sequence >= hooks.fail_after
      end
    end
  end

  def inventory(_req, call)
    count, bytes = @store.totals(call.hooks.count_prefix)
    Stock::V1::InventoryStatus.new(key_count: count, total_value_bytes: bytes, language: 'ruby', stack: STACK)
  end

  private

  # A thread that ends the watch when the call is over: when the core reports
  # it closed, for a Monitor that never ends by itself (so never finished with
  # OK: this op cannot clash with the library's), else at its deadline.
  def end_watch_with_call(call, events, never_ending)
    deadline = deadline_of(call)
    return unless never_ending || deadline

    core_call = call.instance_variable_get(:@wrapped).instance_variable_get(:@call)
    Thread.new do
      if never_ending
        core_call.run_batch(GRPC::Core::CallOps::RECV_CLOSE_ON_SERVER => nil)
      else
        sleep([deadline - Time.now, 0].max)
      end
    rescue StandardError => e
      warn "server: monitor close watch: #{e}"
    ensure
      @store.unwatch(events)
    end
  end

  def call_over
    sleep(DEADLINE_GRACE_S)
    raise GRPC::Cancelled, 'call over'
  end
end

# The legacy proto.KV service (kv.proto): a thin adapter over StockService's
# own get and put, so validation, versions and Monitor events are those of
# stock.v1.Stock, over the same store.
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

main
