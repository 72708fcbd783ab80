# frozen_string_literal: true

# The test hooks (request metadata, see ../../CONTRACT.md), applied to every
# stock.v1.Stock (and proto.KV) call by a grpc-ruby server interceptor.
require 'grpc'
require 'google/protobuf/well_known_types'
require 'google/rpc/error_details_pb'
require 'google/rpc/status_pb'
require_relative 'gunzip'

SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263A and non-BMP \u{1F608}\t\n"
HOOKED_SERVICES = %w[stock.v1.Stock proto.KV].freeze

# One call's hooks: headers and trailers to send, and what the handlers need.
Hooks = Struct.new(:headers, :trailers, :report_encoding, :delay_ms, :watchers_prefix,
                   :fail_code, :fail_message, :fail_after, :repeat_value, :count_prefix, keyword_init: true)

# Request metadata => Hooks (-bin values arrive as their bytes); a bad value is INVALID_ARGUMENT.
def read_hooks(call)
  md = ->(key) { Array(call.metadata[key]).first }
  int = ->(key, default) { md[key] ? whole_number(key, md[key]) : default }
  echo = { 'x-stock-echo' => md['x-stock-echo'], 'x-stock-echo-bin' => md['x-stock-echo-bin'] }
  headers = echo.merge('x-stock-echo-header' => md['x-stock-echo-header']).compact
  headers[GRPC::Core::MetadataKeys::COMPRESSION_REQUEST_ALGORITHM] = 'gzip' if md['x-stock-compress'] == 'gzip'
  trailers = echo.merge('x-stock-echo-trailer' => md['x-stock-echo-trailer']).compact
  if md['x-stock-report-deadline'] == 'true'
    deadline = deadline_of(call)
    trailers['x-stock-deadline-ms'] = deadline ? ((deadline - Time.now) * 1000).floor.to_s : 'none'
  end
  special = md['x-stock-fail-special'] == 'true'
  code_name = md['x-stock-fail'] || (special ? 'UNKNOWN' : nil)
  message = md['x-stock-fail-message-bin']&.dup&.force_encoding(Encoding::UTF_8) || md['x-stock-fail-message']
  Hooks.new(headers:, trailers:, report_encoding: md['x-stock-report-encoding'] == 'true',
            delay_ms: int['x-stock-delay-ms', 0], watchers_prefix: md['x-stock-report-watchers'],
            fail_code: code_name && fail_code_of(code_name),
            fail_message: special ? SPECIAL_MESSAGE : message || "forced #{code_name}",
            fail_after: int['x-stock-fail-after', 0],
            repeat_value: [int['x-stock-repeat-value', 1], 1].max, count_prefix: md['x-stock-count-prefix'])
rescue ArgumentError, NameError => e
  # The echoes still go back, in the trailers.
  raise GRPC::InvalidArgument.new("bad test hook: #{e.message}", trailers || {})
end

# A hook's number of milliseconds or events: digits only (no sign, no
# underscores), spaces around them allowed.
def whole_number(key, text)
  raise ArgumentError, "#{key} must be a number, got #{text.inspect}" unless text.match?(/\A\s*\d+\s*\z/)

  Integer(text.strip, 10)
end

# The code x-stock-fail names: a canonical upper-case name of a non-OK code
# (not a constant looked up through Object, not OK).
def fail_code_of(name)
  code = GRPC::Core::StatusCodes.const_get(name, false)
  raise ArgumentError, "x-stock-fail: unknown code #{name.inspect}" unless code.is_a?(Integer) && code.positive?

  code
end

# Applies the hooks around every hooked call: echo headers (the initial
# metadata, whose per-call algorithm key sets the response compression) and
# trailers, the delay, the report trailers, then x-stock-fail where it acts at
# once (unary; Monitor and Trade with fail-after 0; the handlers do the rest).
# The trailers go with an OK status (output metadata) and with any error.
class HooksInterceptor < GRPC::ServerInterceptor
  def initialize(store)
    super()
    @store = store
  end

  def request_response(call:, method:, **_, &block) = intercept(call, method, ->(_) { true }, &block)
  def client_streamer(call:, method:, **_, &block) = intercept(call, method, ->(_) { false }, &block)
  def server_streamer(call:, method:, **_, &block) = intercept(call, method, ->(h) { h.fail_after <= 0 }, &block)
  def bidi_streamer(call:, method:, **_, &block) = intercept(call, method, ->(h) { h.fail_after <= 0 }, &block)

  private

  def intercept(call, method, fails_at_once)
    return yield unless HOOKED_SERVICES.include?(method.receiver.class.service_name)

    hooks = read_hooks(call)
    call.define_singleton_method(:hooks) { hooks } # for the handlers
    call.merge_metadata_to_send(hooks.headers)
    trailers = call.output_metadata.merge!(hooks.trailers)
    if hooks.report_encoding && (gunzip = gunzip_of(call))
      trailers['x-stock-request-encoding'] = gunzip.encoding
      gunzip.on_gzip { trailers['x-stock-request-encoding'] = 'gzip' }
    end
    sleep(hooks.delay_ms / 1000.0) if hooks.delay_ms.positive?
    trailers['x-stock-watchers'] = @store.watchers(hooks.watchers_prefix).to_s if hooks.watchers_prefix
    ensure_live(call)
    raise forced_status(hooks) if hooks.fail_code && fails_at_once.call(hooks)

    yield
  rescue GRPC::BadStatus => e
    e.metadata.merge!(call.output_metadata)
    raise
  end
end

# The failure x-stock-fail forces, with a google.rpc.ErrorInfo.
def forced_status(hooks)
  rich_status(hooks.fail_code, hooks.fail_message, Google::Rpc::ErrorInfo.new(reason: 'FORCED', domain: 'stock.v1'))
end

# grpc-ruby's rich error: a google.rpc.Status of the same code and message
# holding the detail packed in an Any, sent as the grpc-status-details-bin
# trailer (what a client's BadStatus#to_rpc_status reads back).
def rich_status(code, message, detail)
  status = Google::Rpc::Status.new(code:, message:, details: [Google::Protobuf::Any.pack(detail)])
  GRPC::BadStatus.new_status_exception(code, message, 'grpc-status-details-bin' => Google::Rpc::Status.encode(status))
end

# A call's deadline as a Time, or nil: no deadline arrives as INFINITE_FUTURE,
# which converts to a pre-1970 Time.
def deadline_of(call)
  deadline = call.deadline
  deadline.is_a?(Time) && deadline.to_i.positive? ? deadline : nil
end

# Stops a handler whose call is over (cancelled, or past its deadline: the
# stack's OutOfTime). grpc-ruby has no server-side cancellation flag, but the
# core fails every send on a call that is over: the response headers are sent
# here and the failure (Core::CallError) ends the handler, sending nothing.
def ensure_live(call)
  deadline = deadline_of(call)
  raise GRPC::Core::OutOfTime if deadline && Time.now >= deadline

  call.send_initial_metadata
end
