// The grpc-encoding a call received, which gRPC C++ does not expose: C-core takes grpc-encoding out of the
// metadata it publishes, but the call object keeps the algorithm.
#pragma once

#include <grpc/compression.h>
#include <grpcpp/grpcpp.h>

#include <string>

// Exported by libgrpc, declared in src/core/lib/surface/call_test_only.h, which Debian does not install.
grpc_compression_algorithm grpc_call_test_only_get_compression_algorithm(grpc_call* call);

// `gzip`, or `identity` when the messages were not compressed (no grpc-encoding, identity, or no call).
inline std::string IncomingEncoding(grpc_call* call) {
  const char* name = nullptr;
  if (call == nullptr) return "identity";
  grpc_compression_algorithm algorithm = grpc_call_test_only_get_compression_algorithm(call);
  return grpc_compression_algorithm_name(algorithm, &name) ? name : "identity";
}
