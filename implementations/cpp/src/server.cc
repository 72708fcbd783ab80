// The stock.v1.Stock server, plus the legacy proto.KV over the same store
// (gRPC C++ sync API), per CONTRACT.md.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/error_details.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "kv.grpc.pb.h"
#include "stock.grpc.pb.h"

namespace stock {
namespace {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
using v1::BatchItem;
using v1::BatchSummary;
using v1::Empty;
using v1::GetRequest;
using v1::GetResponse;
using v1::InventoryStatus;
using v1::PutRequest;
using v1::TradeFill;
using v1::TradeOrder;
using v1::WatchEvent;
using v1::WatchRequest;

constexpr char kSpecialMessage[] =
    "\t\ntest with whitespace\r\nand Unicode BMP \xE2\x98\xBA and non-BMP "
    "\xF0\x9F\x98\x88\t\n";
constexpr size_t kMaxKey = 256;
constexpr size_t kMaxValue = 1 << 20;
constexpr auto kPoll = std::chrono::milliseconds(20);

std::atomic<bool> g_stopping{false};

// What the x-stock-* request metadata asks for.
struct Hooks {
  std::optional<Status> fail;
  uint64_t fail_after = 0;
  uint64_t repeat_value = 1;  // Get: the value is answered this many times over
};

// A status with one rich error detail: a google.rpc.Status of the same code
// and message, carrying the detail, set with grpc::SetErrorDetails (sent as
// grpc-status-details-bin).
Status WithDetail(StatusCode code, const std::string& message,
                  const google::protobuf::Message& detail) {
  google::rpc::Status rich;
  rich.set_code(static_cast<int32_t>(code));
  rich.set_message(message);
  rich.add_details()->PackFrom(detail);
  Status status;
  grpc::SetErrorDetails(rich, &status);
  return status;
}

// INVALID_ARGUMENT for a refused request field, with a BadRequest naming it.
Status BadField(const std::string& field, const std::string& description) {
  google::rpc::BadRequest bad;
  auto* violation = bad.add_field_violations();
  violation->set_field(field);
  violation->set_description(description);
  return WithDetail(StatusCode::INVALID_ARGUMENT, description, bad);
}

// The failure an x-stock-fail hook forces, with an ErrorInfo.
Status Forced(StatusCode code, const std::string& message) {
  google::rpc::ErrorInfo info;
  info.set_reason("FORCED");
  info.set_domain("stock.v1");
  return WithDetail(code, message, info);
}

std::optional<std::string> Header(ServerContext* ctx, const char* key) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

bool ParseNumber(const std::string& text, uint64_t* out) {
  size_t b = text.find_first_not_of(" \t"), e = text.find_last_not_of(" \t");
  if (b == std::string::npos) return false;
  std::string t = text.substr(b, e - b + 1);
  if (t.find_first_not_of("0123456789") != std::string::npos) return false;
  try {
    *out = std::stoull(t);
  } catch (...) {
    return false;
  }
  return true;
}

// Whole milliseconds left until the call's deadline, "none" without one.
std::string DeadlineLeft(ServerContext* ctx) {
  if (gpr_time_cmp(ctx->raw_deadline(), gpr_inf_future(ctx->raw_deadline().clock_type)) == 0) {
    return "none";
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      ctx->deadline() - std::chrono::system_clock::now());
  return std::to_string(std::max<int64_t>(0, left.count()));
}

Status CheckKey(const std::string& key) {
  if (key.empty() || key.size() > kMaxKey) {
    return BadField("key", "key must be 1 to 256 bytes, got " + std::to_string(key.size()));
  }
  return Status::OK;
}

Status CheckValue(const std::string& value) {
  if (value.size() > kMaxValue) {
    return BadField("value",
                    "value must be at most 1048576 bytes, got " + std::to_string(value.size()));
  }
  return Status::OK;
}

bool Matches(const std::string& pattern, const std::string& key) {
  if (!pattern.empty() && pattern.back() == '*') {
    return key.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  }
  return pattern == key;
}

struct Watcher {
  ServerContext* ctx;  // the Monitor call; alive while registered
  std::string pattern;
  std::deque<WatchEvent> events;  // guarded by StockService::mu_
};

class StockService final : public v1::Stock::Service {
 public:
  // Wakes every waiting Monitor (on shutdown).
  void WakeAll() {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }

  // Reads one key, validated: the store side of Stock.Get and KV.Get.
  Status Lookup(const std::string& key, std::string* value, int64_t* version) {
    if (Status s = CheckKey(key); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = store_.find(key);
    if (it == store_.end()) {
      return Status(StatusCode::NOT_FOUND, "key \"" + key + "\" not found");
    }
    *value = it->second.value;
    *version = it->second.version;
    return Status::OK;
  }

  // Writes one key, validated: the store side of Stock.Put and KV.Put.
  Status Write(const std::string& key, const std::string& value) {
    if (Status s = CheckKey(key); !s.ok()) return s;
    if (Status s = CheckValue(value); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    PutLocked(key, value);
    return Status::OK;
  }

  // Applies the echo and report hooks and the delay, reads the fail hooks. A
  // non-OK result ends the call (also when the call is over after the delay).
  Status Enter(ServerContext* ctx, Hooks* hooks) {
    for (const char* key : {"x-stock-echo", "x-stock-echo-bin"}) {
      if (auto echo = Header(ctx, key)) {
        ctx->AddInitialMetadata(key, *echo);
        ctx->AddTrailingMetadata(key, *echo);
      }
    }
    if (auto v = Header(ctx, "x-stock-echo-header")) {
      ctx->AddInitialMetadata("x-stock-echo-header", *v);
    }
    if (auto v = Header(ctx, "x-stock-echo-trailer")) {
      ctx->AddTrailingMetadata("x-stock-echo-trailer", *v);
    }
    if (Header(ctx, "x-stock-compress") == std::string("gzip")) {
      ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);  // per-call response compression
    }
    if (Header(ctx, "x-stock-report-encoding") == std::string("true")) {
      ctx->AddTrailingMetadata("x-stock-request-encoding", IncomingEncoding(ctx->c_call()));
    }
    if (Header(ctx, "x-stock-report-deadline") == std::string("true")) {
      ctx->AddTrailingMetadata("x-stock-deadline-ms", DeadlineLeft(ctx));
    }
    uint64_t delay_ms = 0;
    for (auto [key, out] : {std::pair{"x-stock-delay-ms", &delay_ms},
                            std::pair{"x-stock-fail-after", &hooks->fail_after},
                            std::pair{"x-stock-repeat-value", &hooks->repeat_value}}) {
      if (auto v = Header(ctx, key); v && !ParseNumber(*v, out)) {
        return Status(StatusCode::INVALID_ARGUMENT,
                      std::string(key) + " must be a number, got \"" + *v + "\"");
      }
    }
    hooks->repeat_value = std::max<uint64_t>(hooks->repeat_value, 1);
    bool special = Header(ctx, "x-stock-fail-special") == std::string("true");
    auto fail = Header(ctx, "x-stock-fail");
    if (fail || special) {
      StatusCode code = StatusCode::UNKNOWN;
      if (fail && (!CodeFromName(*fail, &code) || code == StatusCode::OK)) {
        return Status(StatusCode::INVALID_ARGUMENT,
                      "x-stock-fail: unknown code \"" + *fail + "\"");
      }
      std::string message = "forced " + CodeName(code);
      if (special) {
        message = kSpecialMessage;
      } else if (auto m = Header(ctx, "x-stock-fail-message-bin")) {
        message = *m;  // the stack hands -bin values over decoded
      } else if (auto m = Header(ctx, "x-stock-fail-message")) {
        message = *m;
      }
      hooks->fail = Forced(code, message);
    }
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
    while (std::chrono::steady_clock::now() < until) {
      if (ctx->IsCancelled() || g_stopping) return Status(StatusCode::CANCELLED, "cancelled");
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          kPoll, until - std::chrono::steady_clock::now()));
    }
    if (auto prefix = Header(ctx, "x-stock-report-watchers")) {
      ctx->AddTrailingMetadata("x-stock-watchers", std::to_string(OpenWatchers(*prefix)));
    }
    // A call its client cancelled, or whose deadline passed, is over: stop here.
    if (ctx->IsCancelled() || g_stopping) return Status(StatusCode::CANCELLED, "cancelled");
    if (ctx->deadline() <= std::chrono::system_clock::now()) {
      return Status(StatusCode::DEADLINE_EXCEEDED, "deadline exceeded");
    }
    return Status::OK;
  }

  // Monitor streams open on this server whose pattern starts with prefix. A
  // stream whose call is over (cancelled, deadline) counts as ended even
  // before its handler has noticed and unregistered it.
  size_t OpenWatchers(const std::string& prefix) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& w : watchers_) {
      if (w->pattern.compare(0, prefix.size(), prefix) == 0 && !w->ctx->IsCancelled()) ++n;
    }
    return n;
  }

  Status Get(ServerContext* ctx, const GetRequest* req, GetResponse* resp) override {
    Hooks hooks;
    if (Status s = Enter(ctx, &hooks); !s.ok()) return s;
    if (hooks.fail) return *hooks.fail;
    int64_t version = 0;
    if (Status s = Lookup(req->key(), resp->mutable_value(), &version); !s.ok()) return s;
    if (hooks.repeat_value > 1) {
      std::string value = resp->value();
      resp->mutable_value()->reserve(value.size() * hooks.repeat_value);
      for (uint64_t i = 1; i < hooks.repeat_value; ++i) resp->mutable_value()->append(value);
    }
    resp->set_version(version);
    return Status::OK;
  }

  Status Put(ServerContext* ctx, const PutRequest* req, Empty*) override {
    Hooks hooks;
    if (Status s = Enter(ctx, &hooks); !s.ok()) return s;
    if (hooks.fail) return *hooks.fail;
    return Write(req->key(), req->value());
  }

  Status Monitor(ServerContext* ctx, const WatchRequest* req,
                 grpc::ServerWriter<WatchEvent>* writer) override {
    Hooks hooks;
    if (Status s = Enter(ctx, &hooks); !s.ok()) return s;
    if (req->pattern().empty()) {
      return BadField("pattern", "pattern must not be empty");
    }
    if (req->max_events() < 0) {
      return BadField("max_events", "max_events must not be negative");
    }
    auto watcher = std::make_shared<Watcher>();
    watcher->ctx = ctx;
    watcher->pattern = req->pattern();
    {
      // Snapshot and registration in one critical section.
      std::lock_guard<std::mutex> lock(mu_);
      if (req->include_existing()) {
        for (const auto& [key, entry] : store_) {  // std::map: byte order
          if (!Matches(req->pattern(), key)) continue;
          WatchEvent& e = watcher->events.emplace_back();
          e.set_key(key);
          e.set_value(entry.value);
          e.set_version(entry.version);
          e.set_existing(true);
        }
      }
      watchers_.push_back(watcher);
    }
    struct Unregister {
      StockService* self;
      Watcher* w;
      ~Unregister() {
        std::lock_guard<std::mutex> lock(self->mu_);
        auto& ws = self->watchers_;
        for (auto it = ws.begin(); it != ws.end(); ++it) {
          if (it->get() == w) {
            ws.erase(it);
            break;
          }
        }
      }
    } unregister{this, watcher.get()};

    uint64_t limit = static_cast<uint64_t>(req->max_events());
    for (uint64_t sent = 0;; ++sent) {
      if (hooks.fail && sent == hooks.fail_after) return *hooks.fail;
      if (limit > 0 && sent == limit) return Status::OK;
      WatchEvent event;
      {
        std::unique_lock<std::mutex> lock(mu_);
        while (watcher->events.empty()) {
          if (ctx->IsCancelled()) return Status(StatusCode::CANCELLED, "cancelled");
          if (g_stopping) return Status(StatusCode::UNAVAILABLE, "server shutting down");
          cv_.wait_for(lock, kPoll);
        }
        event = std::move(watcher->events.front());
        watcher->events.pop_front();
      }
      if (!writer->Write(event)) return Status(StatusCode::CANCELLED, "stream closed");
    }
  }

  Status Batch(ServerContext* ctx, grpc::ServerReader<BatchItem>* reader,
               BatchSummary* summary) override {
    Hooks hooks;
    if (Status s = Enter(ctx, &hooks); !s.ok()) return s;
    std::vector<BatchItem> items;
    for (BatchItem item; reader->Read(&item);) items.push_back(std::move(item));
    // A request stream that ended in a cancellation or a deadline is not a
    // half-close: nothing is applied.
    if (ctx->IsCancelled()) return Status(StatusCode::CANCELLED, "cancelled");
    if (ctx->deadline() <= std::chrono::system_clock::now()) {
      return Status(StatusCode::DEADLINE_EXCEEDED, "deadline exceeded");
    }
    if (hooks.fail) return *hooks.fail;
    for (size_t i = 0; i < items.size(); ++i) {
      for (auto [field, s] : {std::pair{"key", CheckKey(items[i].key())},
                              std::pair{"value", CheckValue(items[i].value())}}) {
        if (!s.ok()) return BadField(field, "item " + std::to_string(i) + ": " + s.error_message());
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (const BatchItem& item : items) {
      summary->set_items(summary->items() + 1);
      summary->set_value_bytes(summary->value_bytes() + item.value().size());
      if (PutLocked(item.key(), item.value())) {
        summary->set_created(summary->created() + 1);
      } else {
        summary->set_updated(summary->updated() + 1);
      }
    }
    return Status::OK;
  }

  Status Trade(ServerContext* ctx,
               grpc::ServerReaderWriter<TradeFill, TradeOrder>* stream) override {
    Hooks hooks;
    if (Status s = Enter(ctx, &hooks); !s.ok()) return s;
    std::map<std::string, int64_t> positions;
    for (uint64_t sequence = 0;;) {
      if (hooks.fail && sequence == hooks.fail_after) return *hooks.fail;
      TradeOrder order;
      if (!stream->Read(&order)) {
        return ctx->IsCancelled() ? Status(StatusCode::CANCELLED, "cancelled") : Status::OK;
      }
      if (order.quantity() <= 0) {
        return BadField("quantity", "order \"" + order.order_id() +
                                        "\": quantity must be > 0, got " +
                                        std::to_string(order.quantity()));
      }
      ++sequence;
      int64_t& position = positions[order.symbol()];
      position += order.side() == v1::BUY ? order.quantity() : -order.quantity();
      TradeFill fill;
      fill.set_order_id(order.order_id());
      fill.set_symbol(order.symbol());
      fill.set_side(order.side());
      fill.set_quantity(order.quantity());
      fill.set_price_cents(order.price_cents());
      fill.set_sequence(static_cast<int64_t>(sequence));
      fill.set_net_position(position);
      if (!stream->Write(fill)) return Status(StatusCode::CANCELLED, "stream closed");
    }
  }

  Status Inventory(ServerContext* ctx, const Empty*, InventoryStatus* resp) override {
    Hooks hooks;
    if (Status s = Enter(ctx, &hooks); !s.ok()) return s;
    if (hooks.fail) return *hooks.fail;
    std::lock_guard<std::mutex> lock(mu_);
    int64_t bytes = 0;
    for (const auto& kv : store_) bytes += kv.second.value.size();
    resp->set_key_count(static_cast<int64_t>(store_.size()));
    resp->set_total_value_bytes(bytes);
    resp->set_language("cpp");
    resp->set_stack("grpc++ " + grpc::Version());
    return Status::OK;
  }

  // Audit stays unimplemented: the generated base answers UNIMPLEMENTED.

 private:
  struct Entry {
    std::string value;
    int64_t version = 0;
  };

  // Writes one key and queues the event for matching watchers; true when created.
  bool PutLocked(const std::string& key, const std::string& value) {
    Entry& entry = store_[key];
    bool created = entry.version == 0;
    entry.version++;
    entry.value = value;
    for (const auto& w : watchers_) {
      if (!Matches(w->pattern, key)) continue;
      WatchEvent& e = w->events.emplace_back();
      e.set_key(key);
      e.set_value(value);
      e.set_version(entry.version);
    }
    cv_.notify_all();
    return created;
  }

  std::mutex mu_;  // guards the store and the watch registry together
  std::condition_variable cv_;
  std::map<std::string, Entry> store_;
  std::vector<std::shared_ptr<Watcher>> watchers_;
};

// The legacy proto.KV (kv.proto, namespace ::proto) over the Stock store; the
// x-stock-* test hooks are not applied to it.
class KvService final : public ::proto::KV::Service {
 public:
  explicit KvService(StockService* stock) : stock_(stock) {}

  Status Get(ServerContext*, const ::proto::GetRequest* req,
             ::proto::GetResponse* resp) override {
    int64_t version = 0;
    return stock_->Lookup(req->key(), resp->mutable_value(), &version);
  }

  Status Put(ServerContext*, const ::proto::PutRequest* req, ::proto::Empty*) override {
    return stock_->Write(req->key(), req->value());
  }

 private:
  StockService* stock_;
};

bool ReadFile(const std::string& path, const char* flag, std::string* out) {
  if (path.empty()) {
    std::fprintf(stderr, "error: --%s is required for this --tls-mode\n", flag);
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) {
    std::fprintf(stderr, "error: failed to read --%s %s\n", flag, path.c_str());
    return false;
  }
  *out = ss.str();
  return true;
}

}  // namespace

int RunServer(int argc, char** argv) {
  std::map<std::string, std::string> opts{{"host", "127.0.0.1"}, {"tls-mode", "none"}};
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i], name, value;
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0) {
      std::fprintf(stderr, "error: unexpected argument %s\n", arg.c_str());
      return 2;
    }
    if (eq != std::string::npos) {
      name = arg.substr(2, eq - 2);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      name = arg.substr(2);
      value = argv[++i];
    } else {
      std::fprintf(stderr, "error: %s needs a value\n", arg.c_str());
      return 2;
    }
    if (name != "port" && name != "host" && name != "tls-mode" && name != "cert-file" &&
        name != "key-file" && name != "ca-file") {
      std::fprintf(stderr, "error: unknown option --%s\n", name.c_str());
      return 2;
    }
    opts[name] = value;
  }
  const std::string& mode = opts["tls-mode"];
  if (opts["port"].empty() || (mode != "none" && mode != "server" && mode != "mtls")) {
    std::fprintf(stderr,
                 "usage: server --port N [--host H] [--tls-mode none|server|mtls] "
                 "[--cert-file F --key-file F] [--ca-file F]\n");
    return 2;
  }

  // Signals are taken by a sigwait thread; every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (mode != "none") {
    std::string cert, key, ca;
    if (!ReadFile(opts["cert-file"], "cert-file", &cert) ||
        !ReadFile(opts["key-file"], "key-file", &key)) {
      return 1;
    }
    grpc::SslServerCredentialsOptions ssl(
        mode == "mtls" ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                       : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_key_cert_pairs.push_back({key, cert});
    if (mode == "mtls") {
      if (!ReadFile(opts["ca-file"], "ca-file", &ca)) return 1;
      ssl.pem_root_certs = ca;
    }
    creds = grpc::SslServerCredentials(ssl);
  }

  std::string host = opts["host"];
  std::string address = (host.find(':') != std::string::npos && host.front() != '[')
                            ? "[" + host + "]:" + opts["port"]
                            : host + ":" + opts["port"];
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  StockService service;
  KvService kv(&service);
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(address, creds, &bound_port);
  builder.RegisterService(&service);
  builder.RegisterService(&kv);
  builder.SetMaxReceiveMessageSize(4 << 20);  // sends stay unlimited (the stack's default)
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port is an error
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    std::fprintf(stderr, "error: failed to serve on %s (bind or certificates)\n",
                 address.c_str());
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus("", true);
  server->GetHealthCheckService()->SetServingStatus("stock.v1.Stock", true);
  server->GetHealthCheckService()->SetServingStatus("proto.KV", true);
  std::printf("listening on %s:%s\n", host.c_str(), opts["port"].c_str());
  std::fflush(stdout);

  // Stop on SIGTERM, SIGINT or stdin EOF, whichever comes first.
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop = false;
  auto request_stop = [&] {
    std::lock_guard<std::mutex> lock(stop_mu);
    stop = true;
    stop_cv.notify_all();
  };
  std::thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    request_stop();
  }).detach();
  std::thread([&] {
    char buf[256];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    request_stop();
  }).detach();
  {
    std::unique_lock<std::mutex> lock(stop_mu);
    stop_cv.wait(lock, [&] { return stop; });
  }
  g_stopping = true;
  service.WakeAll();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  std::fflush(stdout);
  std::_Exit(0);  // the stdin and signal threads are still blocked
}

}  // namespace stock
