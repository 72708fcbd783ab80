// The stock.v1.Stock client CLI (gRPC C++ sync API), per CONTRACT.md.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/error_details.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "stock.grpc.pb.h"

namespace stock {
namespace {

namespace pb = google::protobuf;
using grpc::ClientContext;
using grpc::Status;

// A usage error: the process exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Kind { kUnary, kServerStream, kClientStream, kBidi };

struct Method {
  Kind kind;
  const pb::Message* input;  // prototype of the request type
};

const std::map<std::string, Method>& Methods() {
  static const std::map<std::string, Method> methods{
      {"Get", {Kind::kUnary, &v1::GetRequest::default_instance()}},
      {"Put", {Kind::kUnary, &v1::PutRequest::default_instance()}},
      {"Monitor", {Kind::kServerStream, &v1::WatchRequest::default_instance()}},
      {"Batch", {Kind::kClientStream, &v1::BatchItem::default_instance()}},
      {"Trade", {Kind::kBidi, &v1::TradeOrder::default_instance()}},
      {"Inventory", {Kind::kUnary, &v1::Empty::default_instance()}},
      {"Audit", {Kind::kUnary, &v1::Empty::default_instance()}},
      {"Ledger.Balance", {Kind::kUnary, &v1::Empty::default_instance()}},
  };
  return methods;
}

// One script step with its requests already parsed.
struct Step {
  std::string id;
  std::string method;
  std::vector<std::unique_ptr<pb::Message>> requests;
  std::vector<std::pair<std::string, std::string>> metadata;
  int64_t timeout_ms = 0;
  int64_t cancel_after_ms = 0;
  int64_t copies = 0;         // > 1: that many calls at once, ids ID*0, ID*1, ...
  int64_t read_pause_ms = 0;  // a slow reader: the wait after each response message
  std::string compression;
  std::vector<Step> after_first;
};

struct Options {
  std::string server, tls_mode = "none", ca_file, cert_file, key_file, server_name;
  int64_t timeout_ms = 0;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::string compression;
};

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string Base64(const std::string& s) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < s.size(); i += 3) {
    uint32_t n = static_cast<unsigned char>(s[i]) << 16;
    if (i + 1 < s.size()) n |= static_cast<unsigned char>(s[i + 1]) << 8;
    if (i + 2 < s.size()) n |= static_cast<unsigned char>(s[i + 2]);
    out += abc[(n >> 18) & 63];
    out += abc[(n >> 12) & 63];
    out += i + 1 < s.size() ? abc[(n >> 6) & 63] : '=';
    out += i + 2 < s.size() ? abc[n & 63] : '=';
  }
  return out;
}

// Decodes standard base64 (padding optional); false when s is not base64.
bool Unbase64(const std::string& s, std::string* out) {
  std::string t = s.substr(0, s.find_last_not_of('=') + 1);
  if (s.size() - t.size() > 2 || t.size() % 4 == 1) return false;
  out->clear();
  uint32_t n = 0;
  int bits = 0;
  for (char c : t) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) return false;
    n = (n << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((n >> bits) & 0xff));
    }
  }
  return true;
}

// One request metadata entry: a `-bin` key's base64 value is sent as its bytes.
std::pair<std::string, std::string> MetadataEntry(const std::string& key,
                                                  const std::string& value) {
  if (key.size() < 4 || key.compare(key.size() - 4, 4, "-bin") != 0) return {key, value};
  std::string bytes;
  if (!Unbase64(value, &bytes)) {
    throw UsageError("metadata " + Quote(key) + ": not base64: " + Quote(value));
  }
  return {key, bytes};
}

// Whole lines only: the copies of a step print from their own threads.
void Emit(const std::string& line) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void EmitMessage(const std::string& id, const pb::Message& msg) {
  std::string json;
  pb::util::MessageToJsonString(msg, &json);
  Emit("{\"id\":" + Quote(id) + ",\"message\":" + json + "}");
}

template <class Map>
std::string StockMetadata(const Map& md) {
  std::map<std::string, std::string> picked;
  for (const auto& [k, v] : md) {
    std::string key(k.data(), k.size());
    if (key.rfind("x-stock-", 0) != 0) continue;
    std::string value(v.data(), v.size());
    bool bin = key.size() >= 4 && key.compare(key.size() - 4, 4, "-bin") == 0;
    picked.emplace(key, bin ? Base64(value) : value);
  }
  std::string out = "{";
  for (const auto& [k, v] : picked) {
    if (out.size() > 1) out += ",";
    out += Quote(k) + ":" + Quote(v);
  }
  return out + "}";
}

// The details of the google.rpc.Status a failed call carried in
// grpc-status-details-bin (grpc::ExtractErrorDetails), as a JSON array of the
// Any messages in proto3 JSON with their @type. protobuf's JSON printer
// resolves an Any's type through the generated pool, which holds
// google.rpc.BadRequest and google.rpc.ErrorInfo (compiled into this binary).
std::string Details(const Status& status) {
  if (status.error_details().empty()) return "[]";
  google::rpc::Status rich;
  if (!grpc::ExtractErrorDetails(status, &rich).ok()) {
    std::fprintf(stderr, "warning: grpc-status-details-bin is not a google.rpc.Status\n");
    return "[]";
  }
  std::string out = "[";
  for (const pb::Any& detail : rich.details()) {
    std::string json;
    if (auto s = pb::util::MessageToJsonString(detail, &json); !s.ok()) {
      std::fprintf(stderr, "warning: detail %s not printed: %s\n", detail.type_url().c_str(),
                   std::string(s.message()).c_str());
      continue;
    }
    out += (out.size() > 1 ? "," : "") + json;
  }
  return out + "]";
}

void EmitStatus(const std::string& id, const Status& status, ClientContext& ctx,
                std::chrono::steady_clock::time_point start) {
  double elapsed = std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.3f", elapsed);
  Emit("{\"id\":" + Quote(id) + ",\"status\":{\"code\":" +
       Quote(CodeName(status.error_code())) + ",\"message\":" + Quote(status.error_message()) +
       "},\"headers\":" + StockMetadata(ctx.GetServerInitialMetadata()) +
       ",\"trailers\":" + StockMetadata(ctx.GetServerTrailingMetadata()) +
       ",\"elapsed_ms\":" + ms +
       ",\"response_encoding\":" + Quote(IncomingEncoding(ctx.c_call())) +
       ",\"details\":" + Details(status) + "}");
}

std::unique_ptr<pb::Message> ParseMessage(const pb::Message& prototype, const std::string& json,
                                          const std::string& what) {
  std::unique_ptr<pb::Message> msg(prototype.New());
  auto status = pb::util::JsonStringToMessage(json, msg.get());
  if (!status.ok()) {
    throw UsageError(what + ": not a valid " + prototype.GetTypeName() + ": " +
                     std::string(status.message()));
  }
  return msg;
}

std::unique_ptr<pb::Message> ParseValue(const pb::Message& prototype, const pb::Value& value,
                                        const std::string& what) {
  if (value.kind_case() != pb::Value::kStructValue) {
    throw UsageError(what + ": a request must be a JSON object");
  }
  std::string json;
  pb::util::MessageToJsonString(value.struct_value(), &json);
  return ParseMessage(prototype, json, what);
}

Step ParseStep(const pb::Struct& obj) {
  Step step;
  const auto& f = obj.fields();
  auto str = [&](const char* name) -> std::string {
    auto it = f.find(name);
    if (it == f.end() || it->second.kind_case() == pb::Value::kNullValue) return "";
    if (it->second.kind_case() != pb::Value::kStringValue) {
      throw UsageError(std::string("step field ") + name + " must be a string");
    }
    return it->second.string_value();
  };
  step.id = str("id");
  step.method = str("method");
  step.compression = str("compression");
  std::string what = "step " + Quote(step.id);
  auto m = Methods().find(step.method);
  if (m == Methods().end()) throw UsageError(what + ": unknown method " + Quote(step.method));
  const Method& method = m->second;
  bool streaming_in = method.kind == Kind::kClientStream || method.kind == Kind::kBidi;
  auto request = f.find("request");
  auto requests = f.find("requests");
  bool has_request = request != f.end() && request->second.kind_case() != pb::Value::kNullValue;
  bool has_requests =
      requests != f.end() && requests->second.kind_case() != pb::Value::kNullValue;
  if (streaming_in) {
    if (has_request) throw UsageError(what + ": " + step.method + " takes `requests`");
    if (has_requests) {
      if (requests->second.kind_case() != pb::Value::kListValue) {
        throw UsageError(what + ": `requests` must be an array");
      }
      for (const auto& v : requests->second.list_value().values()) {
        step.requests.push_back(ParseValue(*method.input, v, what));
      }
    }
  } else {
    if (has_requests) throw UsageError(what + ": " + step.method + " takes `request`");
    step.requests.push_back(has_request ? ParseValue(*method.input, request->second, what)
                                        : std::unique_ptr<pb::Message>(method.input->New()));
  }
  if (auto md = f.find("metadata");
      md != f.end() && md->second.kind_case() != pb::Value::kNullValue) {
    if (md->second.kind_case() != pb::Value::kStructValue) {
      throw UsageError(what + ": `metadata` must be an object");
    }
    for (const auto& [k, v] : md->second.struct_value().fields()) {
      if (v.kind_case() != pb::Value::kStringValue) {
        throw UsageError(what + ": metadata values must be strings");
      }
      step.metadata.push_back(MetadataEntry(k, v.string_value()));
    }
  }
  for (auto [name, out] : {std::pair{"timeout_ms", &step.timeout_ms},
                           std::pair{"cancel_after_ms", &step.cancel_after_ms},
                           std::pair{"copies", &step.copies},
                           std::pair{"read_pause_ms", &step.read_pause_ms}}) {
    auto t = f.find(name);
    if (t == f.end() || t->second.kind_case() == pb::Value::kNullValue) continue;
    if (t->second.kind_case() != pb::Value::kNumberValue || t->second.number_value() < 0) {
      throw UsageError(what + ": `" + name + "` must be a non-negative number");
    }
    *out = static_cast<int64_t>(t->second.number_value());
  }
  if (auto a = f.find("after_first");
      a != f.end() && a->second.kind_case() != pb::Value::kNullValue) {
    if (a->second.kind_case() != pb::Value::kListValue) {
      throw UsageError(what + ": `after_first` must be an array");
    }
    for (const auto& v : a->second.list_value().values()) {
      if (v.kind_case() != pb::Value::kStructValue) {
        throw UsageError(what + ": `after_first` holds step objects");
      }
      step.after_first.push_back(ParseStep(v.struct_value()));
    }
  }
  return step;
}

// cancel_after_ms: cancels the call (ClientContext::TryCancel) that many ms
// after it started, unless the call ended (this timer was destroyed) first.
class CancelTimer {
 public:
  CancelTimer(ClientContext* ctx, int64_t ms) {
    if (ms <= 0) return;
    thread_ = std::thread([this, ctx, ms] {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return done_; })) {
        ctx->TryCancel();
      }
    });
  }
  ~CancelTimer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

class Runner {
 public:
  Runner(const Options& opts, std::shared_ptr<grpc::Channel> channel)
      : opts_(opts), stock_(v1::Stock::NewStub(channel)), ledger_(v1::Ledger::NewStub(channel)) {}

  // Runs one step (and its after_first steps), printing every line; with
  // copies, that many calls at once on the one channel, each on its own thread
  // (sync API), started together and joined. Past the server's stream limit
  // the channel (chttp2) queues the calls itself.
  void Run(const Step& step) {
    if (step.copies <= 1) return RunCall(step, step.id);
    std::vector<std::thread> calls;
    for (int64_t k = 0; k < step.copies; ++k) {
      calls.emplace_back([this, &step, k] { RunCall(step, step.id + "*" + std::to_string(k)); });
    }
    for (std::thread& t : calls) t.join();
  }

 private:
  // One call of a step, its lines under id.
  void RunCall(const Step& step, const std::string& id) {
    ClientContext ctx;
    for (const auto& [k, v] : opts_.metadata) ctx.AddMetadata(k, v);
    for (const auto& [k, v] : step.metadata) ctx.AddMetadata(k, v);
    int64_t timeout = step.timeout_ms > 0 ? step.timeout_ms : opts_.timeout_ms;
    if (timeout > 0) {
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout));
    }
    const std::string& compression =
        step.compression.empty() ? opts_.compression : step.compression;
    if (compression == "gzip") ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    auto start = std::chrono::steady_clock::now();
    Status status;
    {
      CancelTimer cancel(&ctx, step.cancel_after_ms);
      status = Call(step, id, &ctx);
    }
    EmitStatus(id, status, ctx, start);
  }

  template <class T>
  static const T& As(const std::unique_ptr<pb::Message>& m) {
    return static_cast<const T&>(*m);
  }

  template <class Resp>
  static Status Unary(const std::string& id, Status status, const Resp& resp) {
    if (status.ok()) EmitMessage(id, resp);
    return status;
  }

  // read_pause_ms: the sync reader pulls one message per Read(), so nothing is
  // read from the stream meanwhile and chttp2's flow control holds the sender.
  static void ReadPause(const Step& step) {
    if (step.read_pause_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(step.read_pause_ms));
    }
  }

  Status Call(const Step& step, const std::string& id, ClientContext* ctx) {
    const std::string& m = step.method;
    if (m == "Get") {
      v1::GetResponse resp;
      return Unary(id, stock_->Get(ctx, As<v1::GetRequest>(step.requests[0]), &resp), resp);
    }
    if (m == "Put" || m == "Inventory" || m == "Audit" || m == "Ledger.Balance") {
      v1::Empty empty;
      if (m == "Put") {
        return Unary(id, stock_->Put(ctx, As<v1::PutRequest>(step.requests[0]), &empty), empty);
      }
      if (m == "Audit") {
        return Unary(id, stock_->Audit(ctx, As<v1::Empty>(step.requests[0]), &empty), empty);
      }
      if (m == "Ledger.Balance") {
        return Unary(id, ledger_->Balance(ctx, As<v1::Empty>(step.requests[0]), &empty), empty);
      }
      v1::InventoryStatus resp;
      return Unary(id, stock_->Inventory(ctx, As<v1::Empty>(step.requests[0]), &resp), resp);
    }
    if (m == "Monitor") {
      auto reader = stock_->Monitor(ctx, As<v1::WatchRequest>(step.requests[0]));
      v1::WatchEvent event;
      for (bool first = true; reader->Read(&event); first = false) {
        EmitMessage(id, event);
        if (first) {
          for (const Step& nested : step.after_first) Run(nested);
        }
        ReadPause(step);
      }
      return reader->Finish();
    }
    if (m == "Batch") {
      v1::BatchSummary summary;
      auto writer = stock_->Batch(ctx, &summary);
      for (const auto& req : step.requests) {
        if (!writer->Write(As<v1::BatchItem>(req))) break;  // the call ended
      }
      writer->WritesDone();
      Status status = writer->Finish();
      if (status.ok()) EmitMessage(id, summary);
      return status;
    }
    // Trade, lock-step: one order, one fill.
    auto stream = stock_->Trade(ctx);
    v1::TradeFill fill;
    bool open = true;
    for (const auto& req : step.requests) {
      if (!stream->Write(As<v1::TradeOrder>(req)) || !stream->Read(&fill)) {
        open = false;  // the stream ended: stop sending
        break;
      }
      EmitMessage(id, fill);
      ReadPause(step);
    }
    if (open) stream->WritesDone();
    while (stream->Read(&fill)) {
      EmitMessage(id, fill);
      ReadPause(step);
    }
    return stream->Finish();
  }

  const Options& opts_;
  std::unique_ptr<v1::Stock::Stub> stock_;
  std::unique_ptr<v1::Ledger::Stub> ledger_;
};

std::string ReadFile(const std::string& path, const char* flag) {
  if (path.empty()) throw std::runtime_error(std::string("--") + flag + " is required");
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) throw std::runtime_error(std::string("failed to read --") + flag + " " + path);
  return ss.str();
}

std::shared_ptr<grpc::Channel> MakeChannel(const Options& opts) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(4 << 20);  // the default; sends stay unlimited
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (opts.tls_mode != "none") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadFile(opts.ca_file, "ca-file");
    if (opts.tls_mode == "mtls") {
      ssl.pem_cert_chain = ReadFile(opts.cert_file, "cert-file");
      ssl.pem_private_key = ReadFile(opts.key_file, "key-file");
    }
    if (!opts.server_name.empty()) args.SetSslTargetNameOverride(opts.server_name);
    creds = grpc::SslCredentials(ssl);
  }
  return grpc::CreateCustomChannel(opts.server, creds, args);
}

std::pair<std::string, std::string> SplitPair(const std::string& s) {
  size_t eq = s.find('=');
  if (eq == std::string::npos) throw UsageError("expected K=V, got " + Quote(s));
  return {s.substr(0, eq), s.substr(eq + 1)};
}

// The proto3 JSON messages of stdin, one per line (batch and trade commands).
std::vector<std::unique_ptr<pb::Message>> StdinMessages(const pb::Message& prototype) {
  std::vector<std::unique_ptr<pb::Message>> out;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    out.push_back(ParseMessage(prototype, line, "stdin line " + Quote(line)));
  }
  return out;
}

// The step a single command stands for.
Step CommandStep(const std::string& cmd, const std::vector<std::string>& args) {
  Step step;
  step.id = cmd;
  auto need = [&](size_t n) {
    if (args.size() != n) throw UsageError(cmd + " takes " + std::to_string(n) + " argument(s)");
  };
  if (cmd == "get") {
    need(1);
    auto req = std::make_unique<v1::GetRequest>();
    req->set_key(args[0]);
    step.method = "Get";
    step.requests.push_back(std::move(req));
  } else if (cmd == "put") {
    need(2);
    auto req = std::make_unique<v1::PutRequest>();
    req->set_key(args[0]);
    req->set_value(args[1]);
    step.method = "Put";
    step.requests.push_back(std::move(req));
  } else if (cmd == "monitor") {
    auto req = std::make_unique<v1::WatchRequest>();
    bool have_pattern = false;
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i] == "--include-existing") {
        req->set_include_existing(true);
      } else if (args[i] == "--max-events" && i + 1 < args.size()) {
        try {
          req->set_max_events(std::stoi(args[++i]));
        } catch (...) {
          throw UsageError("--max-events needs a number");
        }
      } else if (args[i].rfind("--max-events=", 0) == 0) {
        try {
          req->set_max_events(std::stoi(args[i].substr(13)));
        } catch (...) {
          throw UsageError("--max-events needs a number");
        }
      } else if (args[i].rfind("--", 0) != 0 && !have_pattern) {
        req->set_pattern(args[i]);
        have_pattern = true;
      } else {
        throw UsageError("monitor: unexpected argument " + Quote(args[i]));
      }
    }
    if (!have_pattern) throw UsageError("monitor takes a PATTERN");
    step.method = "Monitor";
    step.requests.push_back(std::move(req));
  } else if (cmd == "batch") {
    step.method = "Batch";
    if (args.empty()) {
      step.requests = StdinMessages(v1::BatchItem::default_instance());
    }
    for (const std::string& a : args) {
      auto [k, v] = SplitPair(a);
      auto item = std::make_unique<v1::BatchItem>();
      item->set_key(k);
      item->set_value(v);
      step.requests.push_back(std::move(item));
    }
  } else if (cmd == "trade") {
    need(0);
    step.method = "Trade";
    step.requests = StdinMessages(v1::TradeOrder::default_instance());
  } else if (cmd == "inventory") {
    need(0);
    step.method = "Inventory";
    step.requests.push_back(std::make_unique<v1::Empty>());
  } else {
    throw UsageError("unknown command " + Quote(cmd));
  }
  return step;
}

Options ParseOptions(int argc, char** argv, int* next) {
  Options o;
  int i = 0;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) break;
    std::string name = arg.substr(2), value;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw UsageError(arg + " needs a value");
    }
    if (name == "server") {
      o.server = value;
    } else if (name == "tls-mode") {
      if (value != "none" && value != "server" && value != "mtls") {
        throw UsageError("--tls-mode must be none, server or mtls");
      }
      o.tls_mode = value;
    } else if (name == "ca-file") {
      o.ca_file = value;
    } else if (name == "cert-file") {
      o.cert_file = value;
    } else if (name == "key-file") {
      o.key_file = value;
    } else if (name == "server-name") {
      o.server_name = value;
    } else if (name == "timeout-ms") {
      try {
        o.timeout_ms = std::stoll(value);
      } catch (...) {
        throw UsageError("--timeout-ms needs a number");
      }
    } else if (name == "metadata") {
      auto [k, v] = SplitPair(value);
      o.metadata.push_back(MetadataEntry(k, v));
    } else if (name == "compression") {
      if (value != "gzip" && value != "identity") {
        throw UsageError("--compression must be gzip or identity");
      }
      o.compression = value;
    } else {
      throw UsageError("unknown option " + arg);
    }
  }
  if (o.server.empty()) throw UsageError("--server is required");
  if (i >= argc) throw UsageError("missing command");
  *next = i;
  return o;
}

}  // namespace

int RunClient(int argc, char** argv) {
  Options opts;
  std::string cmd;
  std::vector<std::string> args;
  Step single;
  try {
    int next = 0;
    opts = ParseOptions(argc, argv, &next);
    cmd = argv[next];
    args.assign(argv + next + 1, argv + argc);
    if (cmd == "script") {
      if (!args.empty()) throw UsageError("script takes no arguments");
    } else {
      single = CommandStep(cmd, args);
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr,
                 "error: %s\nusage: client --server HOST:PORT [options] "
                 "get|put|monitor|batch|trade|inventory|script [ARGS]\n",
                 e.what());
    return 2;
  }
  std::shared_ptr<grpc::Channel> channel;
  try {
    channel = MakeChannel(opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  Runner runner(opts, channel);
  try {
    if (cmd != "script") {
      runner.Run(single);
      return 0;
    }
    for (std::string line; std::getline(std::cin, line);) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      pb::Struct obj;
      if (!pb::util::JsonStringToMessage(line, &obj).ok()) {
        throw UsageError("invalid step line: " + line.substr(0, 200));
      }
      runner.Run(ParseStep(obj));
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}

}  // namespace stock
