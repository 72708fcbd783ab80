# frozen_string_literal: true

# The message unmarshaller both sides use with C-core's own decompression
# turned off (grpc.per_message_decompression = 0): C-core never hands
# grpc-encoding to the application, so the encoding a message arrived with is
# seen here. A gzip-compressed message starts with gzip's magic bytes 1f 8b,
# which no protobuf message starts with; it is gunzipped (at most 4 MiB, the
# core's receive limit, applied to the decompressed message as the core's
# own decompression would: RESOURCE_EXHAUSTED) and recorded as gzip. The
# server gets one per call through its rpc descriptors (GunzipRequests).
require 'stringio'
require 'zlib'
require 'grpc'

MAX_RECEIVE_BYTES = 4_194_304 # the core's default receive limit

# One call's unmarshaller: `decode` turns message bytes into a message.
class Gunzip
  attr_reader :encoding

  def initialize(decode)
    @decode = decode
    @encoding = 'identity'
    @on_gzip = nil
  end

  # The block runs when a gzip-compressed message arrives.
  def on_gzip(&block)
    @on_gzip = block
  end

  def call(bytes)
    if bytes.getbyte(0) == 0x1f && bytes.getbyte(1) == 0x8b
      bytes = Zlib::GzipReader.new(StringIO.new(bytes)).read(MAX_RECEIVE_BYTES + 1) || ''
      @encoding = 'gzip'
      @on_gzip&.call
      if bytes.bytesize > MAX_RECEIVE_BYTES
        raise GRPC::ResourceExhausted, "Received message larger than max (over #{MAX_RECEIVE_BYTES} " \
                                       "decompressed vs. #{MAX_RECEIVE_BYTES})"
      end
    end
    @decode.call(bytes)
  end
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

# The Gunzip of a server call (grpc-ruby offers no accessor for a call's
# unmarshaller; the view wraps the active call that holds it).
def gunzip_of(call)
  unmarshal = call.instance_variable_get(:@wrapped)&.instance_variable_get(:@unmarshal)
  unmarshal.is_a?(Gunzip) ? unmarshal : nil
end
