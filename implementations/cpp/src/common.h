// Shared helpers of the stock-cpp server and client.
#pragma once

#include <grpc/compression.h>
#include <grpcpp/grpcpp.h>

#include <string>

// The compression algorithm of the messages a call receives, from the
// grpc-encoding of the initial metadata it received. gRPC C++ never shows the
// application that header (C-core takes grpc-encoding out of the metadata it
// publishes); the call object keeps it. Exported by libgrpc, declared in
// src/core/lib/surface/call_test_only.h, which Debian does not install.
grpc_compression_algorithm grpc_call_test_only_get_compression_algorithm(grpc_call* call);

namespace stock {

inline const char* const kCodeNames[] = {
    "OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS",    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",       "UNAVAILABLE",       "DATA_LOSS",
    "UNAUTHENTICATED"};

inline std::string CodeName(grpc::StatusCode code) {
  int c = static_cast<int>(code);
  return c >= 0 && c <= 16 ? kCodeNames[c] : std::to_string(c);
}

// Returns false for an unknown name.
inline bool CodeFromName(const std::string& name, grpc::StatusCode* code) {
  for (int c = 0; c <= 16; ++c) {
    if (name == kCodeNames[c]) {
      *code = static_cast<grpc::StatusCode>(c);
      return true;
    }
  }
  return false;
}

// The grpc-encoding a call received: `gzip`, or `identity` when its messages
// were not compressed (no grpc-encoding, or identity).
inline std::string IncomingEncoding(grpc_call* call) {
  const char* name = nullptr;
  if (call == nullptr) return "identity";
  grpc_compression_algorithm a = grpc_call_test_only_get_compression_algorithm(call);
  return grpc_compression_algorithm_name(a, &name) ? name : "identity";
}

int RunServer(int argc, char** argv);
int RunClient(int argc, char** argv);

}  // namespace stock
