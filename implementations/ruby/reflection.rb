# frozen_string_literal: true

# Server reflection (grpc.reflection.v1 and v1alpha), which the grpc gem does
# not offer: a thin ServerReflection over the official reflection.proto
# (Debian's grpc-proto; Ruby code generated into gen/ by build.sh) answering
# from gen/descriptors.pb, the FileDescriptorSet that build.sh writes with
# protoc --include_imports. It lists exactly the services the server
# registers; files come with their dependencies (each sent once per stream).
require 'set'
require 'grpc'
require 'google/protobuf/descriptor_pb'
require 'grpc/reflection/v1/reflection_services_pb'
require 'grpc/reflection/v1alpha/reflection_services_pb'

DESCRIPTOR_SET = File.join(__dir__, 'gen', 'descriptors.pb')

# The files of a FileDescriptorSet as their bytes, found by file name, by the
# fully-qualified name of a symbol they declare, and by extension.
class DescriptorIndex
  def initialize(path)
    @bytes = {} # file name => serialized FileDescriptorProto
    @deps = {} # file name => its imports' names
    @symbols = {} # symbol => file name
    @extensions = {} # extended message => { field number => file name }
    Google::Protobuf::FileDescriptorSet.decode(File.binread(path)).file.each { |file| add_file(file) }
  end

  def file?(name) = @bytes.key?(name)

  def file_of_symbol(symbol) = @symbols[symbol]

  def file_of_extension(type, number) = @extensions.dig(type, number)

  # The extension numbers of a known message type, else nil.
  def extension_numbers(type)
    @extensions.fetch(type, {}).keys.sort if @symbols.key?(type)
  end

  # The bytes of the file and of those of its transitive imports not yet in
  # sent (which then holds them all).
  def with_dependencies(name, sent)
    pending = [name]
    out = []
    until pending.empty?
      file = pending.shift
      next if file != name && sent.include?(file)

      sent << file
      out << @bytes.fetch(file)
      pending.concat(@deps.fetch(file).reject { |dep| sent.include?(dep) })
    end
    out
  end

  private

  def add_file(file)
    @bytes[file.name] = Google::Protobuf::FileDescriptorProto.encode(file)
    @deps[file.name] = file.dependency.to_a
    scope = file.package.empty? ? '' : "#{file.package}."
    add_messages(file.name, scope, file.message_type)
    add_enums(file.name, scope, file.enum_type)
    add_extensions(file.name, scope, file.extension)
    file.service.each do |service|
      add_symbol(file.name, "#{scope}#{service.name}")
      service['method'].each { |method| add_symbol(file.name, "#{scope}#{service.name}.#{method.name}") }
    end
  end

  def add_messages(file, scope, messages)
    messages.each do |message|
      name = "#{scope}#{message.name}"
      add_symbol(file, name)
      (message.field.to_a + message.oneof_decl.to_a).each { |part| add_symbol(file, "#{name}.#{part.name}") }
      add_messages(file, "#{name}.", message.nested_type)
      add_enums(file, "#{name}.", message.enum_type)
      add_extensions(file, "#{name}.", message.extension)
    end
  end

  # An enum's values are scoped beside it, as protobuf scopes them.
  def add_enums(file, scope, enums)
    enums.each do |enum|
      add_symbol(file, "#{scope}#{enum.name}")
      enum.value.each { |value| add_symbol(file, "#{scope}#{value.name}") }
    end
  end

  def add_extensions(file, scope, extensions)
    extensions.each do |extension|
      add_symbol(file, "#{scope}#{extension.name}")
      (@extensions[extension.extendee.delete_prefix('.')] ||= {})[extension.number] = file
    end
  end

  def add_symbol(file, symbol)
    @symbols[symbol] ||= file
  end
end

# ServerReflectionInfo of either version: a class including it sets MESSAGES
# to its version's generated module (both have the same messages).
module ReflectionService
  NOT_FOUND = GRPC::Core::StatusCodes::NOT_FOUND
  UNIMPLEMENTED = GRPC::Core::StatusCodes::UNIMPLEMENTED

  # Serves both versions on server, listing the services of service_classes
  # and reflection's own.
  def self.serve(server, service_classes)
    index = DescriptorIndex.new(DESCRIPTOR_SET)
    versions = [ReflectionV1, ReflectionV1alpha]
    names = (service_classes + versions).map(&:service_name)
    versions.each { |cls| server.handle(cls.new(index, names)) }
  end

  def initialize(index, service_names)
    super()
    @index = index
    @service_names = service_names
  end

  def server_reflection_info(requests, _call)
    sent = Set.new # the files this stream has sent
    Enumerator.new { |out| requests.each { |req| out << answer(req, sent) } }
  end

  private

  def answer(req, sent)
    field, response = answer_to(req, sent)
    self.class::MESSAGES::ServerReflectionResponse.new(valid_host: req.host, original_request: req, field => response)
  end

  # The response's field and message.
  def answer_to(req, sent)
    case req.message_request
    when :file_by_filename
      file = req.file_by_filename
      @index.file?(file) ? files(file, sent) : error(NOT_FOUND, "file not found: #{file}")
    when :file_containing_symbol
      file = @index.file_of_symbol(req.file_containing_symbol)
      file ? files(file, sent) : error(NOT_FOUND, "symbol not found: #{req.file_containing_symbol}")
    when :file_containing_extension then extension_file(req.file_containing_extension, sent)
    when :all_extension_numbers_of_type then extension_numbers(req.all_extension_numbers_of_type)
    when :list_services then service_list
    else error(UNIMPLEMENTED, "unknown request: #{req.message_request.inspect}")
    end
  end

  def files(name, sent)
    [:file_descriptor_response,
     self.class::MESSAGES::FileDescriptorResponse.new(file_descriptor_proto: @index.with_dependencies(name, sent))]
  end

  def service_list
    services = @service_names.map { |name| self.class::MESSAGES::ServiceResponse.new(name:) }
    [:list_services_response, self.class::MESSAGES::ListServiceResponse.new(service: services)]
  end

  def extension_file(ext, sent)
    file = @index.file_of_extension(ext.containing_type, ext.extension_number)
    return files(file, sent) if file

    error(NOT_FOUND, "extension not found: #{ext.containing_type} #{ext.extension_number}")
  end

  def extension_numbers(type)
    numbers = @index.extension_numbers(type)
    return error(NOT_FOUND, "type not found: #{type}") unless numbers

    [:all_extension_numbers_response,
     self.class::MESSAGES::ExtensionNumberResponse.new(base_type_name: type, extension_number: numbers)]
  end

  def error(code, message)
    [:error_response, self.class::MESSAGES::ErrorResponse.new(error_code: code, error_message: message)]
  end
end

# grpc.reflection.v1.ServerReflection.
class ReflectionV1 < Grpc::Reflection::V1::ServerReflection::Service
  include ReflectionService
  MESSAGES = Grpc::Reflection::V1
end

# grpc.reflection.v1alpha.ServerReflection (grpcurl and older clients).
class ReflectionV1alpha < Grpc::Reflection::V1alpha::ServerReflection::Service
  include ReflectionService
  MESSAGES = Grpc::Reflection::V1alpha
end
