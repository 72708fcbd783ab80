"use strict";
// Shared by server and client: loads ../../proto/stock.proto and the legacy
// ../../proto/kv.proto at run time with @grpc/proto-loader
// (wire codec) and protobufjs (reflection for the proto3 JSON mapping of
// script requests).
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const PROTO_PATH = path.resolve(__dirname, "..", "..", "..", "proto", "stock.proto");
// Package `proto`: its messages are proto.GetRequest etc., apart from stock.v1's.
const KV_PROTO_PATH = path.resolve(__dirname, "..", "..", "..", "proto", "kv.proto");
// google.rpc.Status and its details (BadRequest, ErrorInfo), field for field
// googleapis' messages: grpc-js ships none and has no rich-error API, so the
// rich error model is these messages in the grpc-status-details-bin trailer.
const RPC_PROTO_PATHS = ["status.proto", "error_details.proto"].map((f) =>
  path.resolve(__dirname, "..", "..", "..", "proto", "google", "rpc", f),
);

/** Loads the package definition of `files`, with `bytes` fields as Buffers. */
function loadDefinition(files = [PROTO_PATH]) {
  return protoLoader.loadSync(files, {
    keepCase: true,
    longs: String,
    enums: String,
    bytes: Buffer,
    defaults: false,
    oneofs: true,
  });
}

let root;
/** The protobufjs reflection root of stock.proto and kv.proto (original field names). */
function reflectionRoot() {
  if (!root) {
    root = new protobuf.Root().loadSync([PROTO_PATH, KV_PROTO_PATH], { keepCase: true });
    root.resolveAll();
  }
  return root;
}

/**
 * The client's methods by script name (`Get`, ..., `Ledger.Balance`, `proto.KV.Get`,
 * `proto.KV.Put`): proto-loader's method definitions (bytes as Buffers: Node's own
 * base64, not protobufjs's JavaScript one, which was a sixth of the client's time with
 * values of a MiB) with the protobufjs request type for fromJson.
 */
function clientMethods() {
  const definition = loadDefinition([PROTO_PATH, KV_PROTO_PATH]);
  const methods = {};
  for (const [service, prefix] of [
    ["stock.v1.Stock", ""],
    ["stock.v1.Ledger", "Ledger."],
    ["proto.KV", "proto.KV."],
  ]) {
    const reflected = reflectionRoot().lookupService(service);
    for (const [name, method] of Object.entries(definition[service])) {
      methods[prefix + name] = { ...method, inputType: reflected.methods[name].resolvedRequestType };
    }
  }
  return methods;
}

let rpc;
/**
 * The protobufjs root of google.rpc (lowerCamelCase JSON names): also the type
 * registry protobufjs's google.protobuf.Any JSON mapping looks `@type` up in.
 */
function rpcRoot() {
  if (!rpc) {
    rpc = new protobuf.Root().loadSync(RPC_PROTO_PATHS);
    rpc.resolveAll();
  }
  return rpc;
}

/** The grpc-status-details-bin value: a google.rpc.Status of code, message and details. */
function encodeStatusDetails(code, message, details) {
  const root = rpcRoot();
  const Any = root.lookupType("google.protobuf.Any");
  const anys = details.map(([typeName, fields]) => {
    const type = root.lookupType(typeName);
    return Any.create({
      type_url: `type.googleapis.com/${typeName}`,
      value: type.encode(type.fromObject(fields)).finish(),
    });
  });
  const Status = root.lookupType("google.rpc.Status");
  return Buffer.from(Status.encode(Status.create({ code, message, details: anys })).finish());
}

/**
 * A status error for a grpc-js handler or interceptor: code, details, and in its metadata the
 * google.rpc.Status with `detail` ([type name, fields]) when given, in grpc-status-details-bin.
 */
function statusError(code, message, detail) {
  const metadata = new grpc.Metadata();
  if (detail) metadata.set("grpc-status-details-bin", encodeStatusDetails(code, message, [detail]));
  return Object.assign(new Error(message), { code, details: message, metadata });
}

/** INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest naming the field. */
function badRequest(field, description) {
  const violation = { fieldViolations: [{ field, description }] };
  return statusError(grpc.status.INVALID_ARGUMENT, description, ["google.rpc.BadRequest", violation]);
}

/**
 * The details of the google.rpc.Status in a grpc-status-details-bin value,
 * each in proto3 JSON with its `@type` (protobufjs's JSON mapping of Any).
 */
function decodeStatusDetails(bytes) {
  const Status = rpcRoot().lookupType("google.rpc.Status");
  const status = Status.toObject(Status.decode(bytes), {
    json: true,
    longs: String,
    enums: String,
    bytes: String,
  });
  const details = status.details ?? [];
  // protobufjs leaves an Any whose type it does not know as {type_url, value}.
  const unknown = details.find((d) => !("@type" in d));
  if (unknown) throw new Error(`unknown detail type ${unknown.type_url}`);
  return details;
}

class JsonError extends Error {}

const INT32 = new Set(["int32", "sint32", "sfixed32"]);
const UINT32 = new Set(["uint32", "fixed32"]);
const INT64 = new Set(["int64", "sint64", "sfixed64"]);
const UINT64 = new Set(["uint64", "fixed64"]);
/**
 * Whether s is base64 (standard alphabet, padding optional). A plain
 * character-class scan: a repeated group of four characters overflows the
 * regexp stack on values of several MiB.
 */
function isBase64(s) {
  const m = /^[A-Za-z0-9+/]*(={0,2})$/.exec(s);
  if (!m) return false;
  const data = s.length - m[1].length;
  if (data % 4 === 1) return false;
  return m[1].length === 0 || s.length % 4 === 0;
}

function integer(v, where, min, max) {
  let n;
  if (typeof v === "number") n = v;
  else if (typeof v === "string" && /^-?\d+(\.0*)?$/.test(v.trim())) n = Number(v.trim());
  if (n === undefined || !Number.isInteger(n) || n < min || n > max) {
    throw new JsonError(`${where}: invalid integer ${JSON.stringify(v)}`);
  }
  return n;
}

function long(v, where, unsigned) {
  let s;
  if (typeof v === "number" && Number.isInteger(v)) s = String(v);
  else if (typeof v === "string" && /^-?\d+$/.test(v)) s = v;
  else if (typeof v === "string" && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(v) && Number.isInteger(Number(v)))
    s = BigInt(Number(v)).toString();
  if (s === undefined) throw new JsonError(`${where}: invalid 64-bit integer ${JSON.stringify(v)}`);
  const b = BigInt(s);
  const [min, max] = unsigned ? [0n, 2n ** 64n - 1n] : [-(2n ** 63n), 2n ** 63n - 1n];
  if (b < min || b > max) throw new JsonError(`${where}: out of range ${s}`);
  return b.toString();
}

function scalar(field, v, where) {
  const t = field.type;
  if (field.resolvedType instanceof protobuf.Enum) {
    const values = field.resolvedType.values;
    if (typeof v === "string" && Object.hasOwn(values, v)) return v;
    if (typeof v === "number" && Number.isInteger(v)) return v;
    throw new JsonError(`${where}: invalid enum value ${JSON.stringify(v)}`);
  }
  if (field.resolvedType instanceof protobuf.Type) return fromJson(field.resolvedType, v, where);
  if (t === "string") {
    if (typeof v !== "string") throw new JsonError(`${where}: expected a string`);
    return v;
  }
  if (t === "bool") {
    if (typeof v !== "boolean") throw new JsonError(`${where}: expected true or false`);
    return v;
  }
  if (t === "bytes") {
    if (typeof v !== "string") throw new JsonError(`${where}: expected base64`);
    let s = v.replace(/-/g, "+").replace(/_/g, "/");
    if (!isBase64(s)) throw new JsonError(`${where}: invalid base64`);
    return Buffer.from(s, "base64");
  }
  if (INT32.has(t)) return integer(v, where, -(2 ** 31), 2 ** 31 - 1);
  if (UINT32.has(t)) return integer(v, where, 0, 2 ** 32 - 1);
  if (INT64.has(t)) return long(v, where, false);
  if (UINT64.has(t)) return long(v, where, true);
  if (t === "double" || t === "float") {
    if (typeof v === "number") return v;
    if (v === "NaN" || v === "Infinity" || v === "-Infinity") return Number(v);
    if (typeof v === "string" && v.trim() !== "" && !Number.isNaN(Number(v))) return Number(v);
    throw new JsonError(`${where}: invalid number`);
  }
  throw new JsonError(`${where}: unsupported type ${t}`);
}

/**
 * Parses a message in the proto3 JSON mapping (original or lowerCamelCase
 * names, null = default) into the plain object Type.fromObject takes; checks
 * that it is valid on the way, throwing JsonError otherwise.
 */
function fromJson(type, json, where = type.name) {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new JsonError(`${where}: expected a JSON object for ${type.fullName.slice(1)}`);
  }
  const out = {};
  for (const [key, v] of Object.entries(json)) {
    const field = type.fields[key] || type.fieldsArray.find((f) => protobuf.util.camelCase(f.name) === key);
    if (!field) throw new JsonError(`${where}: unknown field ${JSON.stringify(key)}`);
    if (v === null) continue;
    const at = `${where}.${key}`;
    if (field.repeated) {
      if (!Array.isArray(v)) throw new JsonError(`${at}: expected an array`);
      out[field.name] = v.map((x, i) => scalar(field, x, `${at}[${i}]`));
    } else {
      out[field.name] = scalar(field, v, at);
    }
  }
  return out;
}

module.exports = {
  PROTO_PATH,
  KV_PROTO_PATH,
  loadDefinition,
  clientMethods,
  statusError,
  badRequest,
  decodeStatusDetails,
  fromJson,
  JsonError,
  isBase64,
};
