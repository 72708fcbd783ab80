// Shared helpers of the stock-cpp server and client.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

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

int RunServer(int argc, char** argv);
int RunClient(int argc, char** argv);

}  // namespace stock
