// The x-stock-* test hooks of CONTRACT.md. gRPC C++'s server interceptors cannot end a call before its
// handler runs, so every Stock method calls ApplyHooks first.
#pragma once

#include <absl/status/status.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "encoding.h"
#include "google/rpc/error_details.pb.h"
#include "store.h"

namespace stock {

// What a call's x-stock-* request metadata asks the method for.
struct Hooks {
  uint64_t delay_ms = 0;
  std::optional<grpc::StatusCode> fail;  // x-stock-fail (UNKNOWN for x-stock-fail-special alone)
  std::string fail_message;
  uint64_t fail_after = 0;
  uint64_t repeat_value = 1;  // Get: the value is answered this many times over
};

inline std::optional<std::string> Header(const grpc::ServerContext* ctx, const char* key) {
  auto it = ctx->client_metadata().find(key);
  if (it == ctx->client_metadata().end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

// The hooks of a call's request metadata; a bad value is INVALID_ARGUMENT.
inline grpc::Status ReadHooks(const grpc::ServerContext* ctx, Hooks* hooks) {
  for (auto [key, out] :
       {std::pair{"x-stock-delay-ms", &hooks->delay_ms}, std::pair{"x-stock-fail-after", &hooks->fail_after},
        std::pair{"x-stock-repeat-value", &hooks->repeat_value}}) {
    auto value = Header(ctx, key);
    if (!value) continue;
    if (value->empty() || value->size() > 18 || value->find_first_not_of("0123456789") != std::string::npos) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(key) + " must be a number: " + *value);
    }
    *out = std::stoull(*value);
  }
  bool special = Header(ctx, "x-stock-fail-special") == std::string("true");
  auto fail = Header(ctx, "x-stock-fail");
  if (!fail && !special) return grpc::Status::OK;
  if (!fail) hooks->fail = grpc::StatusCode::UNKNOWN;  // x-stock-fail-special alone
  for (int code = 1; fail && code <= 16; ++code) {     // gRPC C++'s codes are absl's, which can name them
    if (*fail == absl::StatusCodeToString(absl::StatusCode(code))) hooks->fail = grpc::StatusCode(code);
  }
  if (!hooks->fail) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "x-stock-fail: unknown code " + *fail);
  auto message = Header(ctx, "x-stock-fail-message-bin");  // the stack hands -bin values over decoded
  if (!message) message = Header(ctx, "x-stock-fail-message");
  hooks->fail_message = message.value_or("forced " + absl::StatusCodeToString(absl::StatusCode(*hooks->fail)));
  if (special) hooks->fail_message = "\t\ntest with whitespace\r\nand Unicode BMP \u263A and non-BMP \U0001F608\t\n";
  return grpc::Status::OK;
}

// CANCELLED or DEADLINE_EXCEEDED for a call its client cancelled or whose deadline passed, else OK.
inline grpc::Status CallOver(const grpc::ServerContext* ctx) {
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
  if (ctx->deadline() > std::chrono::system_clock::now()) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded");
}

// Every Stock method's first step: echoes, response compression, report-* trailers, then the delay. A non-OK
// result ends the call, as does a call that is over after the delay; the hooks tell the method when to fail.
inline grpc::Status ApplyHooks(grpc::ServerContext* ctx, Store& store, Hooks* hooks) {
  for (const char* key : {"x-stock-echo", "x-stock-echo-bin", "x-stock-echo-header", "x-stock-echo-trailer"}) {
    auto value = Header(ctx, key);
    if (value && key != std::string("x-stock-echo-trailer")) ctx->AddInitialMetadata(key, *value);
    if (value && key != std::string("x-stock-echo-header")) ctx->AddTrailingMetadata(key, *value);
  }
  if (Header(ctx, "x-stock-compress") == std::string("gzip")) ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
  if (Header(ctx, "x-stock-report-encoding") == std::string("true")) {
    ctx->AddTrailingMetadata("x-stock-request-encoding", IncomingEncoding(ctx->c_call()));
  }
  if (Header(ctx, "x-stock-report-deadline") == std::string("true")) {
    bool none = gpr_time_cmp(ctx->raw_deadline(), gpr_inf_future(ctx->raw_deadline().clock_type)) == 0;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(ctx->deadline() - std::chrono::system_clock::now());
    std::string ms = std::to_string(std::max<int64_t>(0, left.count()));
    ctx->AddTrailingMetadata("x-stock-deadline-ms", none ? "none" : ms);
  }
  if (grpc::Status s = ReadHooks(ctx, hooks); !s.ok()) return s;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(hooks->delay_ms);
  while (std::chrono::steady_clock::now() < until && !ctx->IsCancelled()) {
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(20), until - std::chrono::steady_clock::now()));
  }
  if (auto prefix = Header(ctx, "x-stock-report-watchers")) {
    ctx->AddTrailingMetadata("x-stock-watchers", std::to_string(store.Watchers(*prefix)));
  }
  return CallOver(ctx);  // a call that is over stops here
}

// The x-stock-fail status, with a google.rpc.ErrorInfo.
inline grpc::Status ForcedStatus(const Hooks& hooks) {
  google::rpc::ErrorInfo info;
  info.set_reason("FORCED");
  info.set_domain("stock.v1");
  return RichStatus(*hooks.fail, hooks.fail_message, info);
}

}  // namespace stock
