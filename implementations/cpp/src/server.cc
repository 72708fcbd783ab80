// The stock.v1.Stock server and the legacy proto.KV over the same store (gRPC C++ sync API), per CONTRACT.md.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "hooks.h"
#include "kv.grpc.pb.h"
#include "stock.grpc.pb.h"
#include "store.h"

namespace stock {
namespace {

using grpc::ServerContext;
using grpc::Status;

struct Options {
  std::string port, host = "127.0.0.1", tls_mode = "none", cert_file, key_file, ca_file;
};

// The skeleton, in its order: main, ParseArgs, Serve, the Stock methods, the proto.KV methods.
bool ParseArgs(int argc, char** argv, Options* options);
std::unique_ptr<grpc::Server> Serve(const Options& options);

class StockService final : public v1::Stock::Service {
 public:
  explicit StockService(Store& store) : store_(store) {}
  Status Get(ServerContext* ctx, const v1::GetRequest* request, v1::GetResponse* response) override;
  Status Put(ServerContext* ctx, const v1::PutRequest* request, v1::Empty*) override;
  Status Monitor(ServerContext* ctx, const v1::WatchRequest* request, grpc::ServerWriter<v1::WatchEvent>*) override;
  Status Batch(ServerContext* ctx, grpc::ServerReader<v1::BatchItem>*, v1::BatchSummary* summary) override;
  Status Trade(ServerContext* ctx, grpc::ServerReaderWriter<v1::TradeFill, v1::TradeOrder>*) override;
  Status Inventory(ServerContext* ctx, const v1::Empty*, v1::InventoryStatus* response) override;
  // Audit stays unimplemented: the generated base answers UNIMPLEMENTED.

 private:
  Store& store_;
};

// The legacy proto.KV (kv.proto, namespace ::proto) over the Stock store, without the test hooks.
class KvService final : public ::proto::KV::Service {
 public:
  explicit KvService(Store& store) : store_(store) {}
  Status Get(ServerContext*, const ::proto::GetRequest* request, ::proto::GetResponse* response) override;
  Status Put(ServerContext*, const ::proto::PutRequest* request, ::proto::Empty*) override;

 private:
  Store& store_;
};

}  // namespace
}  // namespace stock

int main(int argc, char** argv) {
  stock::Options options;
  if (!stock::ParseArgs(argc, argv, &options)) return 2;
  // SIGTERM and SIGINT are taken by sigwait below; every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::unique_ptr<grpc::Server> server;
  try {
    server = stock::Serve(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  // Stops on SIGTERM, SIGINT or stdin EOF, whichever comes first.
  std::thread([&] {
    char buf[256];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    kill(getpid(), SIGTERM);
  }).detach();
  int signal = 0;
  sigwait(&signals, &signal);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(300));  // then cancels open calls
  std::fflush(stdout);
  std::_Exit(0);  // the stdin thread is still blocked
}

namespace stock {
namespace {

// Returns false (after saying why) on a usage error.
bool ParseArgs(int argc, char** argv, Options* options) {
  std::map<std::string, std::string*> fields{{"--port", &options->port},         {"--host", &options->host},
                                             {"--tls-mode", &options->tls_mode}, {"--cert-file", &options->cert_file},
                                             {"--key-file", &options->key_file}, {"--ca-file", &options->ca_file}};
  for (int i = 1; i < argc; i += 2) {
    auto field = fields.find(argv[i]);
    if (field == fields.end() || i + 1 == argc) {
      std::fprintf(stderr, "error: unknown option or missing value: %s\n", argv[i]);
      return false;
    }
    *field->second = argv[i + 1];
  }
  const std::string& mode = options->tls_mode;
  if (options->port.empty() || (mode != "none" && mode != "server" && mode != "mtls")) {
    std::fprintf(stderr,
                 "usage: server --port N [--host H] [--tls-mode none|server|mtls] "
                 "[--cert-file F --key-file F] [--ca-file F]\n");
    return false;
  }
  return true;
}

std::string ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (path.empty() || !in) throw std::runtime_error(std::string("cannot read --") + flag + " '" + path + "'");
  return text.str();
}

// Builds and starts the server with the Stock and proto.KV services, health and reflection.
std::unique_ptr<grpc::Server> Serve(const Options& options) {
  static Store store;  // the services live as long as the process
  static StockService stock(store);
  static KvService kv(store);
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (options.tls_mode != "none") {
    bool mtls = options.tls_mode == "mtls";
    grpc::SslServerCredentialsOptions ssl(mtls ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_key_cert_pairs.push_back(
        {ReadFile(options.key_file, "key-file"), ReadFile(options.cert_file, "cert-file")});
    if (mtls) ssl.pem_root_certs = ReadFile(options.ca_file, "ca-file");
    credentials = grpc::SslServerCredentials(ssl);
  }
  const std::string& host = options.host;
  bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  std::string address = (ipv6 ? "[" + host + "]" : host) + ":" + options.port;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(address, credentials, &bound_port);
  builder.RegisterService(&stock);
  builder.RegisterService(&kv);
  builder.SetMaxReceiveMessageSize(4 << 20);                // sends stay unlimited (the stack's default)
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port is an error
  // the contract's header-list limit, soft and hard (else core refuses only some requests past it)
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 16 << 10);
  builder.AddChannelArgument("grpc.absolute_max_metadata_size", 16 << 10);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) throw std::runtime_error("cannot serve on " + address + " (bind or certificates)");
  for (const char* service : {"", "stock.v1.Stock", "proto.KV"}) {
    server->GetHealthCheckService()->SetServingStatus(service, true);
  }
  std::printf("listening on %s:%s\n", host.c_str(), options.port.c_str());
  std::fflush(stdout);
  return server;
}

Status StockService::Get(ServerContext* ctx, const v1::GetRequest* request, v1::GetResponse* response) {
  Hooks hooks;
  if (Status s = ApplyHooks(ctx, store_, &hooks); !s.ok()) return s;
  if (hooks.fail) return ForcedStatus(hooks);
  int64_t version = 0;
  std::string value;
  if (Status s = store_.Get(request->key(), &value, &version); !s.ok()) return s;
  response->mutable_value()->reserve(value.size() * hooks.repeat_value);
  for (uint64_t i = 0; i < std::max<uint64_t>(hooks.repeat_value, 1); ++i) response->mutable_value()->append(value);
  response->set_version(version);
  return Status::OK;
}

Status StockService::Put(ServerContext* ctx, const v1::PutRequest* request, v1::Empty*) {
  Hooks hooks;
  if (Status s = ApplyHooks(ctx, store_, &hooks); !s.ok()) return s;
  if (hooks.fail) return ForcedStatus(hooks);
  return store_.Put(request->key(), request->value());
}

Status StockService::Monitor(ServerContext* ctx, const v1::WatchRequest* request,
                             grpc::ServerWriter<v1::WatchEvent>* writer) {
  Hooks hooks;
  if (Status s = ApplyHooks(ctx, store_, &hooks); !s.ok()) return s;
  if (request->pattern().empty()) return BadField("pattern", "pattern must not be empty");
  if (request->max_events() < 0) return BadField("max_events", "max_events must not be negative");
  std::shared_ptr<Watcher> watcher = store_.Watch(ctx, *request);
  std::shared_ptr<void> unwatch(nullptr, [&](void*) { store_.Unwatch(watcher.get()); });
  for (int64_t sent = 0;; ++sent) {
    if (hooks.fail && sent == static_cast<int64_t>(hooks.fail_after)) return ForcedStatus(hooks);
    if (request->max_events() > 0 && sent == request->max_events()) return Status::OK;
    v1::WatchEvent event;
    if (Status s = store_.Next(watcher.get(), &event); !s.ok()) return s;
    if (!writer->Write(event)) return Status(grpc::StatusCode::CANCELLED, "stream closed");
  }
}

Status StockService::Batch(ServerContext* ctx, grpc::ServerReader<v1::BatchItem>* reader, v1::BatchSummary* summary) {
  Hooks hooks;
  if (Status s = ApplyHooks(ctx, store_, &hooks); !s.ok()) return s;
  std::vector<v1::BatchItem> items;
  for (v1::BatchItem item; reader->Read(&item);) items.push_back(std::move(item));
  // A request stream that ended in a cancellation or a deadline is not a half-close: nothing is applied.
  if (Status s = CallOver(ctx); !s.ok()) return s;
  if (hooks.fail) return ForcedStatus(hooks);
  return store_.Batch(items, summary);
}

Status StockService::Trade(ServerContext* ctx, grpc::ServerReaderWriter<v1::TradeFill, v1::TradeOrder>* stream) {
  Hooks hooks;
  if (Status s = ApplyHooks(ctx, store_, &hooks); !s.ok()) return s;
  std::map<std::string, int64_t> positions;
  for (int64_t sequence = 1;; ++sequence) {
    if (hooks.fail && sequence - 1 == static_cast<int64_t>(hooks.fail_after)) return ForcedStatus(hooks);
    v1::TradeOrder order;
    if (!stream->Read(&order)) {
      return ctx->IsCancelled() ? Status(grpc::StatusCode::CANCELLED, "cancelled") : Status::OK;
    }
    if (order.quantity() <= 0) {
      return BadField("quantity", "order \"" + order.order_id() + "\": quantity must be > 0, got " +
                                      std::to_string(order.quantity()));
    }
    int64_t& position = positions[order.symbol()];
    position += order.side() == v1::BUY ? order.quantity() : -order.quantity();
    v1::TradeFill fill;  // repeats the order's fields 1 to 5 (same numbers and types in stock.proto)
    fill.ParseFromString(order.SerializeAsString());
    fill.set_sequence(sequence);
    fill.set_net_position(position);
    if (!stream->Write(fill)) return Status(grpc::StatusCode::CANCELLED, "stream closed");
  }
}

Status StockService::Inventory(ServerContext* ctx, const v1::Empty*, v1::InventoryStatus* response) {
  Hooks hooks;
  if (Status s = ApplyHooks(ctx, store_, &hooks); !s.ok()) return s;
  if (hooks.fail) return ForcedStatus(hooks);
  store_.Totals(Header(ctx, "x-stock-count-prefix").value_or(""), response);  // absent: every key
  response->set_language("cpp");
  response->set_stack("grpc++ " + grpc::Version());
  return Status::OK;
}

Status KvService::Get(ServerContext*, const ::proto::GetRequest* request, ::proto::GetResponse* response) {
  int64_t version = 0;
  return store_.Get(request->key(), response->mutable_value(), &version);
}

Status KvService::Put(ServerContext*, const ::proto::PutRequest* request, ::proto::Empty*) {
  return store_.Put(request->key(), request->value());
}

}  // namespace
}  // namespace stock
