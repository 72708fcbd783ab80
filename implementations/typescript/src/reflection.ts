// gRPC server reflection, grpc.reflection.v1 and v1alpha, for a Connect
// router: Connect for Node has none of its own (connect-es#507), so this
// answers from the protobuf-es descriptors of the services that the router
// registers (and of the files they import), as connect-go's grpcreflect does.
import { createRegistry, toBinary, type DescFile, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { ServerReflection as V1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as V1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** A request's message_request, the same in v1 and v1alpha. */
type Query =
  | {
      case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices";
      value: string;
    }
  | {
      case: "fileContainingExtension";
      value: { containingType: string; extensionNumber: number };
    }
  | { case: undefined; value?: undefined };

/** The files behind everything the router serves (plus `extra`), looked up per request. */
class Descriptors {
  readonly services: string[];
  private readonly files = new Map<string, DescFile>();
  private readonly registry: Registry;

  constructor(router: ConnectRouter, extra: DescFile[]) {
    const services = [...new Set(router.handlers.map((h) => h.service))];
    this.services = services.map((s) => s.typeName);
    const add = (file: DescFile) => {
      if (this.files.has(file.proto.name)) return;
      this.files.set(file.proto.name, file);
      file.dependencies.forEach(add);
    };
    services.forEach((s) => add(s.file));
    extra.forEach(add);
    this.registry = createRegistry(...this.files.values());
  }

  /** The file that declares a type, service, method or field (pkg.Service.Method, pkg.Message.field). */
  private declaring(symbol: string): DescFile | undefined {
    const desc = this.registry.get(symbol);
    if (desc) return desc.file;
    const dot = symbol.lastIndexOf(".");
    const parent = this.registry.get(symbol.slice(0, dot));
    const name = symbol.slice(dot + 1);
    if (parent?.kind === "service" && parent.methods.some((m) => m.name === name)) return parent.file;
    if (parent?.kind === "message" && parent.fields.some((f) => f.name === name)) return parent.file;
    return undefined;
  }

  /** Serialized FileDescriptorProtos of a file and of its imports not yet sent on this stream. */
  private withDependencies(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const add = (f: DescFile, always: boolean) => {
      if (sent.has(f.proto.name) && !always) return;
      sent.add(f.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      f.dependencies.forEach((d) => add(d, false));
    };
    add(file, true);
    return out;
  }

  /** The message_response for one request of a stream. */
  answer(query: Query, sent: Set<string>) {
    const notFound = (what: string) => ({
      case: "errorResponse" as const,
      value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
    });
    const files = (file: DescFile | undefined, what: string) =>
      file
        ? {
            case: "fileDescriptorResponse" as const,
            value: { fileDescriptorProto: this.withDependencies(file, sent) },
          }
        : notFound(what);
    switch (query.case) {
      case "listServices":
        return {
          case: "listServicesResponse" as const,
          value: { service: this.services.map((name) => ({ name })) },
        };
      case "fileByFilename":
        return files(this.files.get(query.value), `file ${query.value}`);
      case "fileContainingSymbol":
        return files(this.declaring(query.value), `symbol ${query.value}`);
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = query.value;
        const message = this.registry.getMessage(containingType);
        const ext = message ? this.registry.getExtensionFor(message, extensionNumber) : undefined;
        return files(ext?.file, `extension ${extensionNumber} of ${containingType}`);
      }
      case "allExtensionNumbersOfType": {
        if (!this.registry.getMessage(query.value)) return notFound(`type ${query.value}`);
        const numbers = [...this.registry].flatMap((d) =>
          d.kind === "extension" && d.extendee.typeName === query.value ? [d.number] : [],
        );
        return {
          case: "allExtensionNumbersResponse" as const,
          value: { baseTypeName: query.value, extensionNumber: numbers },
        };
      }
      default:
        return {
          case: "errorResponse" as const,
          value: {
            errorCode: Code.InvalidArgument,
            errorMessage: "empty message_request",
          },
        };
    }
  }
}

/**
 * Registers grpc.reflection.v1 and v1alpha ServerReflection on the router;
 * call it after every other service. `extra` adds files that no service
 * imports (the rich error details), so clients can decode them too.
 */
export function reflection(router: ConnectRouter, extra: DescFile[] = []) {
  let descriptors: Descriptors | undefined;
  const serve = async function* <Req extends { host: string; messageRequest: Query }>(requests: AsyncIterable<Req>) {
    descriptors ??= new Descriptors(router, extra);
    const sent = new Set<string>();
    for await (const req of requests) {
      yield {
        validHost: req.host,
        originalRequest: req,
        messageResponse: descriptors.answer(req.messageRequest, sent),
      };
    }
  };
  router.service(V1, { serverReflectionInfo: serve });
  router.service(V1alpha, { serverReflectionInfo: serve });
}
