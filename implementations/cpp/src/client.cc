// The stock.v1.Stock script client (gRPC C++ sync API), per CONTRACT.md; it also calls the legacy proto.KV.
#include <absl/status/status.h>
#include <absl/strings/escaping.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/error_details.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "encoding.h"
#include "google/rpc/status.pb.h"
#include "kv.grpc.pb.h"
#include "step.pb.h"
#include "stock.grpc.pb.h"

namespace stock {
namespace {

namespace pb = google::protobuf;
using grpc::ClientContext;
using grpc::Status;
using stockcpp::Connection;
using Clock = std::chrono::steady_clock;

// A usage error: the process exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A step ready to run: its fields as sent, its request messages and its metadata with -bin values decoded.
struct Step {
  stockcpp::Step spec;
  std::vector<std::unique_ptr<pb::Message>> requests;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<Step> after_first;
};

Connection g_default;  // the connection of the options

// A lane: its steps, queued as their lines are read and run in order by its own thread; lanes run at once.
struct Lane {
  std::mutex mu;
  std::condition_variable ready;
  std::deque<Step> steps;  // guarded by mu
  bool closed = false;     // stdin ended: the thread ends once its steps are done
  std::thread worker;
};

// The skeleton, in its order; main comes first, the definitions follow it.
void RunLane(Lane* lane);
Connection ParseArgs(int argc, char** argv);
Step ParseStep(const stockcpp::Step& spec);
Status ChannelFor(const Connection& connection, std::shared_ptr<grpc::Channel>* channel);
void RunStep(const Step& step);
void RunCall(const Step& step, const std::string& id);
void RunBench(const Step& step);
void EmitMessage(const std::string& id, const pb::Message& message);
void EmitStatus(const std::string& id, const Status& status, ClientContext* ctx, Clock::time_point start);

}  // namespace
}  // namespace stock

int main(int argc, char** argv) {
  namespace pb = google::protobuf;
  try {
    stock::g_default = stock::ParseArgs(argc, argv);
  } catch (const stock::UsageError& e) {
    std::fprintf(
        stderr,
        "error: %s\nusage: client --server HOST:PORT [--tls-mode none|server|mtls] [--ca-file F] "
        "[--cert-file F --key-file F] [--server-name NAME] [--keepalive-ms N [--keepalive-timeout-ms N]] script\n",
        e.what());
    return 2;
  }
  std::shared_ptr<grpc::Channel> channel;
  if (grpc::Status s = stock::ChannelFor(stock::g_default, &channel); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.error_message().c_str());
    return 1;
  }
  std::ios::sync_with_stdio(false);  // std::cin reads by blocks, not a locked getc per byte
  std::map<int64_t, stock::Lane> lanes;
  auto wait_lanes = [&lanes] {  // every lane runs to its end
    for (auto& [number, lane] : lanes) {
      {
        std::lock_guard<std::mutex> lock(lane.mu);
        lane.closed = true;
      }
      lane.ready.notify_one();
      lane.worker.join();
    }
  };
  for (std::string line; std::getline(std::cin, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      stockcpp::Step spec;
      if (auto s = pb::util::JsonStringToMessage(line, &spec); !s.ok()) {
        throw stock::UsageError("not a step: " + std::string(s.message()) + ": " + line.substr(0, 200));
      }
      stock::Step step = stock::ParseStep(spec);
      stock::Lane& lane = lanes[spec.lane()];
      if (!lane.worker.joinable()) lane.worker = std::thread(stock::RunLane, &lane);
      {
        std::lock_guard<std::mutex> lock(lane.mu);
        lane.steps.push_back(std::move(step));
      }
      lane.ready.notify_one();
    } catch (const stock::UsageError& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      wait_lanes();
      return 2;
    }
  }
  wait_lanes();
  return 0;
}

namespace stock {
namespace {

// A lane's thread: runs its steps one after the other as they arrive, until stdin ended and none is left.
void RunLane(Lane* lane) {
  std::unique_lock<std::mutex> lock(lane->mu);
  for (;;) {
    lane->ready.wait(lock, [lane] { return !lane->steps.empty() || lane->closed; });
    if (lane->steps.empty()) return;
    Step step = std::move(lane->steps.front());
    lane->steps.pop_front();
    lock.unlock();
    RunStep(step);
    lock.lock();
  }
}

bool ValidMode(const std::string& mode) { return mode.empty() || mode == "none" || mode == "server" || mode == "mtls"; }

Connection ParseArgs(int argc, char** argv) {
  Connection c;
  std::map<std::string, std::string*> fields{
      {"--server", c.mutable_server()},     {"--tls-mode", c.mutable_tls_mode()},
      {"--ca-file", c.mutable_ca_file()},   {"--cert-file", c.mutable_cert_file()},
      {"--key-file", c.mutable_key_file()}, {"--server-name", c.mutable_server_name()}};
  std::map<std::string, void (Connection::*)(uint64_t)> millis{
      {"--keepalive-ms", &Connection::set_keepalive_ms},
      {"--keepalive-timeout-ms", &Connection::set_keepalive_timeout_ms}};
  int i = 1;
  for (; i + 1 < argc && (fields.count(argv[i]) || millis.count(argv[i])); i += 2) {
    std::string value = argv[i + 1];
    if (fields.count(argv[i])) {
      *fields[argv[i]] = value;
      continue;
    }
    uint64_t ms = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), ms);
    if (value.empty() || error != std::errc() || end != value.data() + value.size()) {
      throw UsageError(std::string(argv[i]) + " needs a number of ms, not '" + value + "'");
    }
    (c.*millis[argv[i]])(ms);
  }
  if (i + 1 != argc || argv[i] != std::string("script")) throw UsageError("expected options, then `script`");
  if (c.server().empty()) throw UsageError("--server is required");
  if (!ValidMode(c.tls_mode())) throw UsageError("--tls-mode must be none, server or mtls");
  return c;
}

// The method a step names: Stock's, `Ledger.Balance` or the legacy `proto.KV.Get`/`proto.KV.Put` (from the
// descriptors compiled into this binary).
const pb::MethodDescriptor* FindMethod(const std::string& name) {
  std::string service = "stock.v1.Stock", short_name = name;
  for (const std::string prefix : {"Ledger.", "proto.KV."}) {
    if (name.rfind(prefix, 0) == 0) {
      service = prefix == "Ledger." ? "stock.v1.Ledger" : "proto.KV";
      short_name = name.substr(prefix.size());
    }
  }
  return pb::DescriptorPool::generated_pool()->FindServiceByName(service)->FindMethodByName(short_name);
}

// fill: sets the value of request message `request` to the decoded `repeat` `times` times, built in one allocation
// (Put and Batch only: their requests have a bytes `value`).
void FillValues(const stockcpp::Step& spec, std::vector<std::unique_ptr<pb::Message>>& requests) {
  for (const stockcpp::Fill& fill : spec.fill()) {
    std::string where = "step " + spec.id() + ": fill of request " + std::to_string(fill.request());
    if (spec.method() != "Put" && spec.method() != "Batch") {
      throw UsageError(where + ": only Put and Batch have a value");
    }
    if (fill.request() < 0 || fill.request() >= static_cast<int64_t>(requests.size())) {
      throw UsageError(where + ": no such request");
    }
    if (fill.times() < 0) throw UsageError(where + ": times must be >= 0");
    std::string repeat;
    if (!absl::Base64Unescape(fill.repeat(), &repeat)) throw UsageError(where + ": repeat is not base64");
    std::string value;
    if (!repeat.empty() && static_cast<uint64_t>(fill.times()) > value.max_size() / repeat.size()) {
      throw UsageError(where + ": the value is too large");
    }
    size_t size = repeat.size() * fill.times();
    value.reserve(size);
    if (size > 0) value = repeat;
    while (value.size() < size) value.append(value, 0, std::min(value.size(), size - value.size()));  // doubling
    pb::Message* message = requests[fill.request()].get();
    const pb::FieldDescriptor* field = message->GetDescriptor()->FindFieldByName("value");
    message->GetReflection()->SetString(message, field, std::move(value));
  }
}

Step ParseStep(const stockcpp::Step& spec) {
  Step step{spec};
  const pb::MethodDescriptor* method = FindMethod(spec.method());
  if (method == nullptr) throw UsageError("step " + spec.id() + ": unknown method " + spec.method());
  if (spec.lane() < 0) throw UsageError("step " + spec.id() + ": lane must be >= 0");
  if (spec.has_bench() && (spec.bench().duration_ms() < 0 || spec.bench().concurrency() < 1)) {
    throw UsageError("step " + spec.id() + ": bench needs duration_ms >= 0 and concurrency >= 1");
  }
  if (spec.has_connection() && !ValidMode(spec.connection().tls_mode())) {
    throw UsageError("step " + spec.id() + ": unknown tls_mode " + spec.connection().tls_mode());
  }
  if (!spec.compression().empty() && spec.compression() != "gzip" && spec.compression() != "identity") {
    throw UsageError("step " + spec.id() + ": unknown compression " + spec.compression());
  }
  if (spec.after_first_size() > 0 && spec.method() != "Monitor") {
    throw UsageError("step " + spec.id() + ": after_first is for Monitor steps only");
  }
  if (spec.cancel_after_messages() != 0 && spec.method() != "Monitor") {
    throw UsageError("step " + spec.id() + ": cancel_after_messages is for Monitor steps only");
  }
  std::vector<const pb::Struct*> bodies{&spec.request()};  // absent = an empty message
  if (method->client_streaming()) bodies.assign(spec.requests().pointer_begin(), spec.requests().pointer_end());
  for (const pb::Struct* body : bodies) {
    std::string json;
    pb::util::MessageToJsonString(*body, &json);
    step.requests.emplace_back(pb::MessageFactory::generated_factory()->GetPrototype(method->input_type())->New());
    if (!pb::util::JsonStringToMessage(json, step.requests.back().get()).ok()) {
      throw UsageError("step " + spec.id() + ": not a " + method->input_type()->full_name() + ": " + json);
    }
  }
  FillValues(spec, step.requests);
  for (const auto& [key, value] : spec.metadata()) {
    std::string bytes = value;
    bool bin = key.size() > 4 && key.compare(key.size() - 4, 4, "-bin") == 0;
    if (bin && !absl::Base64Unescape(value, &bytes)) throw UsageError("metadata " + key + ": not base64");
    step.metadata.emplace_back(key, bytes);
  }
  for (const stockcpp::Step& nested : spec.after_first()) step.after_first.push_back(ParseStep(nested));
  return step;
}

std::string ReadFile(const std::string& path, const char* field) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (path.empty() || !in) throw std::runtime_error(std::string("cannot read ") + field + " '" + path + "'");
  return text.str();
}

// A Unix socket target in gRPC's name syntax (unix:/ABS or unix:///ABS), which C-core dials itself.
bool IsUnix(const std::string& server) { return server.rfind("unix:", 0) == 0; }

// The channel of a connection, opened on first use and reused; UNAVAILABLE when a certificate file cannot be read.
// On a Unix socket the authority (and with TLS the name verified and sent as SNI) is server_name, else localhost.
Status ChannelFor(const Connection& connection, std::shared_ptr<grpc::Channel>* channel) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<grpc::Channel>> channels;  // by the serialized connection
  std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<grpc::Channel>& cached = channels[connection.SerializeAsString()];
  if (!cached) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(4 << 20);  // the default; sends stay unlimited
    if (IsUnix(connection.server())) {
      std::string name = connection.server_name().empty() ? "localhost" : connection.server_name();
      args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, name);
      args.SetSslTargetNameOverride(name);  // GRPC_SSL_TARGET_NAME_OVERRIDE_ARG
    } else if (!connection.server_name().empty()) {
      args.SetSslTargetNameOverride(connection.server_name());
    }
    if (connection.has_keepalive_ms()) {  // C-core's own keepalive, with or without calls, unlimited PINGs
      auto ms = [](uint64_t n) { return static_cast<int>(std::min<uint64_t>(n, INT_MAX)); };
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, ms(connection.keepalive_ms()));
      if (connection.has_keepalive_timeout_ms()) {
        args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms(connection.keepalive_timeout_ms()));
      }
      args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
      args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    }
    bool tls = connection.tls_mode() == "server" || connection.tls_mode() == "mtls";
    grpc::SslCredentialsOptions ssl;
    try {
      if (tls) ssl.pem_root_certs = ReadFile(connection.ca_file(), "ca_file");
      if (connection.tls_mode() == "mtls") {
        ssl.pem_cert_chain = ReadFile(connection.cert_file(), "cert_file");
        ssl.pem_private_key = ReadFile(connection.key_file(), "key_file");
      }
    } catch (const std::runtime_error& e) {
      return Status(grpc::StatusCode::UNAVAILABLE, e.what());
    }
    auto credentials = tls ? grpc::SslCredentials(ssl) : grpc::InsecureChannelCredentials();
    cached = grpc::CreateCustomChannel(connection.server(), credentials, args);
  }
  *channel = cached;
  return Status::OK;
}

// One step: with copies, that many calls at once on the one channel, each on its own thread (sync API),
// started together and joined; past the server's stream limit the channel (chttp2) queues them itself.
void RunStep(const Step& step) {
  if (step.spec.has_bench()) return RunBench(step);
  if (step.spec.copies() <= 1) return RunCall(step, step.spec.id());
  std::vector<std::thread> calls;
  for (int64_t k = 0; k < step.spec.copies(); ++k) {
    calls.emplace_back([&step, k] { RunCall(step, step.spec.id() + "*" + std::to_string(k)); });
  }
  for (std::thread& call : calls) call.join();
}

// read_pause_ms, after a message was printed: the sync reader pulls one message per Read(), so nothing is read
// from the stream meanwhile and chttp2's flow control holds the sender.
void Pause(const Step& step) { std::this_thread::sleep_for(std::chrono::milliseconds(step.spec.read_pause_ms())); }

// One call of a step, its lines under id: deadline, metadata, compression, cancel_after_ms, then one branch per
// method kind.
void RunCall(const Step& step, const std::string& id) {
  auto start = Clock::now();
  std::shared_ptr<grpc::Channel> channel;
  Status opened = ChannelFor(step.spec.has_connection() ? step.spec.connection() : g_default, &channel);
  if (!opened.ok()) return EmitStatus(id, opened, nullptr, start);
  ClientContext ctx;
  for (const auto& [key, value] : step.metadata) ctx.AddMetadata(key, value);
  if (step.spec.timeout_ms() > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(step.spec.timeout_ms()));
  }
  if (step.spec.compression() == "gzip") ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  std::promise<void> ended;
  std::future<void> timer;  // cancel_after_ms: ClientContext::TryCancel, unless the call ended first
  if (step.spec.cancel_after_ms() > 0) {
    timer = std::async(std::launch::async, [&, done = ended.get_future()] {
      auto after = std::chrono::milliseconds(step.spec.cancel_after_ms());
      if (done.wait_for(after) == std::future_status::timeout) ctx.TryCancel();
    });
  }
  auto stock = v1::Stock::NewStub(channel);
  const std::string& method = step.spec.method();
  v1::GetResponse got;
  v1::InventoryStatus inventory;
  v1::BatchSummary summary;
  v1::Empty empty;
  ::proto::GetResponse kv_got;
  ::proto::Empty kv_empty;
  const pb::Message* response = nullptr;  // the one answer of a unary or client-stream call
  Status status;
  if (method == "Monitor") {  // server stream
    auto reader = stock->Monitor(&ctx, static_cast<const v1::WatchRequest&>(*step.requests[0]));
    v1::WatchEvent event;
    int64_t received = 0;
    for (bool first = true; reader->Read(&event); first = false) {
      EmitMessage(id, event);
      if (first) {
        for (const Step& nested : step.after_first) RunStep(nested);
      }
      if (++received == step.spec.cancel_after_messages()) {
        ctx.TryCancel();  // cancel_after_messages: read no more; Finish reports the cancelled call
        break;
      }
      Pause(step);
    }
    status = reader->Finish();
  } else if (method == "Batch") {  // client stream
    auto writer = stock->Batch(&ctx, &summary);
    for (const auto& item : step.requests) {
      if (!writer->Write(static_cast<const v1::BatchItem&>(*item))) break;  // the call ended
    }
    writer->WritesDone();
    // ClientWriter allows no message (sync_stream.h: AllowNoMessage) and Finish returns the core's status
    // unchecked, so a server that ends OK without the summary leaves it as it was (empty) under OK; unlike
    // BlockingUnaryCall (client_unary_call.h), which makes that UNIMPLEMENTED. A second message keeps the status
    // from arriving (the core publishes it once every message was read): the call ends at its deadline.
    status = writer->Finish();
    response = &summary;
  } else if (method == "Trade") {  // lock-step bidi: one order, one fill
    auto stream = stock->Trade(&ctx);
    v1::TradeFill fill;
    bool open = true;
    for (const auto& order : step.requests) {
      open = stream->Write(static_cast<const v1::TradeOrder&>(*order)) && stream->Read(&fill);
      if (!open) break;  // the stream ended: stop sending
      EmitMessage(id, fill);
      Pause(step);
    }
    if (open) stream->WritesDone();
    while (stream->Read(&fill)) {
      EmitMessage(id, fill);
      Pause(step);
    }
    status = stream->Finish();
  } else if (method == "Get") {  // unary
    status = stock->Get(&ctx, static_cast<const v1::GetRequest&>(*step.requests[0]), &got);
    response = &got;
  } else if (method == "Inventory") {
    status = stock->Inventory(&ctx, v1::Empty(), &inventory);
    response = &inventory;
  } else if (method == "proto.KV.Get") {  // the legacy service, unary too
    auto kv = ::proto::KV::NewStub(channel);
    status = kv->Get(&ctx, static_cast<const ::proto::GetRequest&>(*step.requests[0]), &kv_got);
    response = &kv_got;
  } else if (method == "proto.KV.Put") {
    auto kv = ::proto::KV::NewStub(channel);
    status = kv->Put(&ctx, static_cast<const ::proto::PutRequest&>(*step.requests[0]), &kv_empty);
    response = &kv_empty;
  } else {
    response = &empty;
    if (method == "Put") status = stock->Put(&ctx, static_cast<const v1::PutRequest&>(*step.requests[0]), &empty);
    if (method == "Audit") status = stock->Audit(&ctx, v1::Empty(), &empty);
    if (method == "Ledger.Balance") status = v1::Ledger::NewStub(channel)->Balance(&ctx, v1::Empty(), &empty);
  }
  if (status.ok() && response != nullptr) EmitMessage(id, *response);
  ended.set_value();
  if (timer.valid()) timer.wait();
  EmitStatus(id, status, &ctx, start);
}

void Emit(const pb::Struct& line);  // below, with the other output helpers
pb::Value StringValue(const std::string& text);

// The log-scale latency bucket of v whole microseconds (CONTRACT.md, "Bench steps").
uint32_t Bucket(uint64_t v) {
  int n = v == 0 ? 0 : 64 - __builtin_clzll(v);  // the bit length
  return n <= 5 ? static_cast<uint32_t>(v) : 16 * (n - 4) + ((v >> (n - 5)) & 15);
}

// A bench step: `concurrency` threads on the step's one channel, each running the step's call (printing nothing)
// again and again until duration_ms have passed since the step started; each counts into its own totals, merged
// into the one line once every thread has ended.
void RunBench(const Step& step) {
  auto start = Clock::now();
  auto until = start + std::chrono::milliseconds(step.spec.bench().duration_ms());
  struct alignas(64) Worker {  // one per thread, merged after the join
    uint64_t calls = 0, errors = 0, messages = 0;
    std::map<uint32_t, uint64_t> buckets;
    Status first_error;
    Clock::time_point failed_at = Clock::time_point::max();
  };
  std::vector<Worker> workers(step.spec.bench().concurrency());
  std::shared_ptr<grpc::Channel> channel;
  Status opened = ChannelFor(step.spec.has_connection() ? step.spec.connection() : g_default, &channel);
  if (!opened.ok()) {  // the step's call fails, once
    workers[0].errors = 1;
    workers[0].first_error = opened;
    workers[0].failed_at = start;
  } else {
    auto stock = v1::Stock::NewStub(channel);
    auto ledger = v1::Ledger::NewStub(channel);
    auto kv = ::proto::KV::NewStub(channel);
    const std::string& method = step.spec.method();
    const v1::Empty empty_request;
    // One call of the step, printing nothing: its status, and its messages counted into *messages.
    auto call = [&](uint64_t* messages) {
      ClientContext ctx;
      for (const auto& [key, value] : step.metadata) ctx.AddMetadata(key, value);
      if (step.spec.timeout_ms() > 0) {
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(step.spec.timeout_ms()));
      }
      if (step.spec.compression() == "gzip") ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
      *messages = 1;  // unary
      if (method == "Monitor") {
        auto reader = stock->Monitor(&ctx, static_cast<const v1::WatchRequest&>(*step.requests[0]));
        v1::WatchEvent event;
        for (*messages = 0; reader->Read(&event);) ++*messages;
        return reader->Finish();
      } else if (method == "Batch") {
        v1::BatchSummary summary;
        auto writer = stock->Batch(&ctx, &summary);
        *messages = 0;
        for (const auto& item : step.requests) {
          if (!writer->Write(static_cast<const v1::BatchItem&>(*item))) break;
          ++*messages;
        }
        writer->WritesDone();
        return writer->Finish();
      } else if (method == "Trade") {  // lock-step
        auto stream = stock->Trade(&ctx);
        v1::TradeFill fill;
        bool open = true;
        *messages = 0;
        for (const auto& order : step.requests) {
          open = stream->Write(static_cast<const v1::TradeOrder&>(*order)) && stream->Read(&fill);
          if (!open) break;
          ++*messages;
        }
        if (open) stream->WritesDone();
        while (stream->Read(&fill)) ++*messages;
        return stream->Finish();
      }
      v1::GetResponse got;
      v1::InventoryStatus inventory;
      v1::Empty empty;
      if (method == "Get") return stock->Get(&ctx, static_cast<const v1::GetRequest&>(*step.requests[0]), &got);
      if (method == "Put") return stock->Put(&ctx, static_cast<const v1::PutRequest&>(*step.requests[0]), &empty);
      if (method == "Inventory") return stock->Inventory(&ctx, empty_request, &inventory);
      if (method == "Audit") return stock->Audit(&ctx, empty_request, &empty);
      ::proto::GetResponse kv_got;
      ::proto::Empty kv_empty;
      if (method == "proto.KV.Get")
        return kv->Get(&ctx, static_cast<const ::proto::GetRequest&>(*step.requests[0]), &kv_got);
      if (method == "proto.KV.Put")
        return kv->Put(&ctx, static_cast<const ::proto::PutRequest&>(*step.requests[0]), &kv_empty);
      return ledger->Balance(&ctx, empty_request, &empty);
    };
    std::vector<std::thread> threads;
    for (Worker& worker : workers) {
      threads.emplace_back([&call, &worker, until] {
        while (Clock::now() < until) {
          uint64_t messages = 0;
          auto begin = Clock::now();
          Status status = call(&messages);
          auto end = Clock::now();
          if (status.ok()) {
            ++worker.calls;
            worker.messages += messages;
            ++worker.buckets[Bucket(std::chrono::duration_cast<std::chrono::microseconds>(end - begin).count())];
          } else if (++worker.errors == 1) {
            worker.first_error = status;
            worker.failed_at = end;
          }
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  double elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  Worker total;
  for (const Worker& worker : workers) {
    total.calls += worker.calls;
    total.errors += worker.errors;
    total.messages += worker.messages;
    for (const auto& [bucket, count] : worker.buckets) total.buckets[bucket] += count;
    if (worker.failed_at < total.failed_at) {
      total.first_error = worker.first_error;
      total.failed_at = worker.failed_at;
    }
  }
  pb::Struct line;
  (*line.mutable_fields())["id"] = StringValue(step.spec.id());
  auto& bench = *(*line.mutable_fields())["bench"].mutable_struct_value()->mutable_fields();
  bench["calls"].set_number_value(total.calls);
  bench["errors"].set_number_value(total.errors);
  bench["messages"].set_number_value(total.messages);
  bench["elapsed_ms"].set_number_value(elapsed_ms);
  auto* histogram = bench["histogram"].mutable_list_value();
  for (const auto& [bucket, count] : total.buckets) {
    auto* pair = histogram->add_values()->mutable_list_value();
    pair->add_values()->set_number_value(bucket);
    pair->add_values()->set_number_value(count);
  }
  if (total.errors > 0) {
    auto& error = *bench["first_error"].mutable_struct_value()->mutable_fields();
    error["code"] = StringValue(absl::StatusCodeToString(absl::StatusCode(total.first_error.error_code())));
    error["message"] = StringValue(total.first_error.error_message());
  }
  Emit(line);
}

// Whole lines only: lanes and the copies of a step print from their own threads.
void Emit(const pb::Struct& line) {
  static std::mutex mu;
  std::string json;
  pb::util::MessageToJsonString(line, &json);
  std::lock_guard<std::mutex> lock(mu);
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
}

pb::Value JsonValue(const pb::Message& message) {
  std::string json;
  pb::Value value;
  pb::util::MessageToJsonString(message, &json);
  pb::util::JsonStringToMessage(json, &value);
  return value;
}

pb::Value StringValue(const std::string& text) {
  pb::Value value;
  value.set_string_value(text);
  return value;
}

void EmitMessage(const std::string& id, const pb::Message& message) {
  pb::Struct line;
  (*line.mutable_fields())["id"] = StringValue(id);
  (*line.mutable_fields())["message"] = JsonValue(message);
  Emit(line);
}

// x-stock- entries of received metadata; -bin values in base64.
pb::Value StockMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  pb::Value value;
  auto* fields = value.mutable_struct_value()->mutable_fields();
  for (const auto& [k, v] : metadata) {
    std::string key(k.data(), k.size()), text(v.data(), v.size());
    if (key.rfind("x-stock-", 0) != 0) continue;
    bool bin = key.compare(key.size() - 4, 4, "-bin") == 0;
    fields->insert({key, StringValue(bin ? absl::Base64Escape(text) : text)});
  }
  return value;
}

// The status line; ctx is null for a call that never started (its connection failed).
void EmitStatus(const std::string& id, const Status& status, ClientContext* ctx, Clock::time_point start) {
  pb::Struct line;
  auto& fields = *line.mutable_fields();
  fields["id"] = StringValue(id);
  auto& code = *fields["status"].mutable_struct_value()->mutable_fields();
  code["code"] = StringValue(absl::StatusCodeToString(absl::StatusCode(status.error_code())));  // same numbers
  code["message"] = StringValue(status.error_message());
  static const std::multimap<grpc::string_ref, grpc::string_ref> none;
  fields["headers"] = StockMetadata(ctx ? ctx->GetServerInitialMetadata() : none);
  fields["trailers"] = StockMetadata(ctx ? ctx->GetServerTrailingMetadata() : none);
  fields["elapsed_ms"].set_number_value(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  fields["response_encoding"] = StringValue(IncomingEncoding(ctx ? ctx->c_call() : nullptr));
  google::rpc::Status rich;
  auto* details = fields["details"].mutable_list_value();
  if (!status.error_details().empty() && grpc::ExtractErrorDetails(status, &rich).ok()) {
    for (const pb::Any& detail : rich.details()) *details->add_values() = JsonValue(detail);
  }
  Emit(line);
}

}  // namespace
}  // namespace stock
