# frozen_string_literal: true

# The store rules and the in-memory store with its watch registry.
require 'grpc'
require 'google/rpc/error_details_pb'
require 'stock_pb'

MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 1_048_576

def validate_key(key)
  return if key.bytesize.between?(1, MAX_KEY_BYTES)

  raise bad_request('key', "key must be 1 to #{MAX_KEY_BYTES} bytes, got #{key.bytesize}")
end

def validate_value(value)
  return if value.bytesize <= MAX_VALUE_BYTES

  raise bad_request('value', "value must be at most #{MAX_VALUE_BYTES} bytes, got #{value.bytesize}")
end

# INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest whose
# one field violation names the field.
def bad_request(field, message)
  violation = Google::Rpc::BadRequest::FieldViolation.new(field:, description: message)
  detail = Google::Rpc::BadRequest.new(field_violations: [violation])
  rich_status(GRPC::Core::StatusCodes::INVALID_ARGUMENT, message, detail)
end

# A pattern ending in `*` matches the keys that start with what precedes it;
# any other pattern matches exactly that key.
def matches(pattern, key)
  pattern.end_with?('*') ? key.start_with?(pattern[0...-1]) : key == pattern
end

# The keys with their values and versions, and the open Monitors (each a
# Queue of events), guarded together by one mutex.
class Store
  def initialize
    @mutex = Mutex.new
    @data = {} # key => [value, version]
    @watchers = {} # Queue => pattern
  end

  # [value, version], or nil for a missing key.
  def get(key) = @mutex.synchronize { @data[key] }

  def put(key, value) = batch([[key, value]])

  # items: [[key, value], ...], applied at once; returns [created, updated].
  def batch(items)
    @mutex.synchronize do
      created = 0
      items.each do |key, value|
        version = @data.key?(key) ? @data[key][1] + 1 : 1
        created += 1 if version == 1
        @data[key] = [value, version]
        @watchers.each do |events, pattern|
          events << Stock::V1::WatchEvent.new(key:, value:, version:, existing: false) if matches(pattern, key)
        end
      end
      [created, items.size - created]
    end
  end

  # Registers a Monitor and takes its snapshot in one critical section: the
  # returned Queue holds the existing matching keys first, then every later put.
  def watch(pattern, include_existing)
    events = Queue.new
    @mutex.synchronize do
      @watchers[events] = pattern
      existing = include_existing ? @data.sort.select { |key, _| matches(pattern, key) } : []
      existing.each do |key, (value, version)|
        events << Stock::V1::WatchEvent.new(key:, value:, version:, existing: true)
      end
    end
    events
  end

  # Ends a Monitor: no later put reaches it, and a pop of its drained Queue returns nil.
  def unwatch(events)
    @mutex.synchronize { @watchers.delete(events) }
    events.close
  end

  # How many open Monitors have a pattern starting with prefix.
  def watchers(prefix) = @mutex.synchronize { @watchers.count { |_, pattern| pattern.start_with?(prefix) } }

  # [key count, total value bytes] of the keys starting with prefix (all keys when nil)
  def totals(prefix = nil)
    @mutex.synchronize do
      values = @data.filter_map { |key, (value, _)| value if prefix.nil? || key.start_with?(prefix) }
      [values.size, values.sum(&:bytesize)]
    end
  end
end
