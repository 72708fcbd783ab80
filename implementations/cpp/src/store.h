// The store: validation, key patterns, and the keys with the Monitor registry, guarded together.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/error_details.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "stock.pb.h"

namespace stock {

// A status carrying a google.rpc.Status with one detail (grpc::SetErrorDetails: grpc-status-details-bin).
inline grpc::Status RichStatus(grpc::StatusCode code, const std::string& message,
                               const google::protobuf::Message& detail) {
  google::rpc::Status rich;
  rich.set_code(code);
  rich.set_message(message);
  rich.add_details()->PackFrom(detail);
  grpc::Status status;
  grpc::SetErrorDetails(rich, &status);
  return status;
}

// INVALID_ARGUMENT with a google.rpc.BadRequest naming the refused field.
inline grpc::Status BadField(const std::string& field, const std::string& description) {
  google::rpc::BadRequest bad;
  auto* violation = bad.add_field_violations();
  violation->set_field(field);
  violation->set_description(description);
  return RichStatus(grpc::StatusCode::INVALID_ARGUMENT, description, bad);
}

inline grpc::Status ValidateKey(const std::string& key) {
  if (key.empty() || key.size() > 256) {
    return BadField("key", "key must be 1 to 256 bytes, got " + std::to_string(key.size()));
  }
  return grpc::Status::OK;
}

inline grpc::Status ValidateValue(const std::string& value) {
  if (value.size() > (1 << 20)) {
    return BadField("value", "value must be at most 1048576 bytes, got " + std::to_string(value.size()));
  }
  return grpc::Status::OK;
}

// A pattern is an exact key, or a prefix ending in `*`.
inline bool Matches(const std::string& pattern, const std::string& key) {
  if (!pattern.empty() && pattern.back() == '*') {
    return key.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  }
  return pattern == key;
}

// An open Monitor: its call, its pattern and the events queued for it.
struct Watcher {
  grpc::ServerContext* ctx;
  std::string pattern;
  std::deque<v1::WatchEvent> events;  // guarded by Store::mu_
};

class Store {
 public:
  grpc::Status Get(const std::string& key, std::string* value, int64_t* version) {
    if (grpc::Status s = ValidateKey(key); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "key \"" + key + "\" not found");
    *value = it->second.value;
    *version = it->second.version;
    return grpc::Status::OK;
  }

  grpc::Status Put(const std::string& key, const std::string& value) {
    if (grpc::Status s = ValidateKey(key); !s.ok()) return s;
    if (grpc::Status s = ValidateValue(value); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    PutLocked(key, value);
    return grpc::Status::OK;
  }

  // Validates every item, then applies them all at once.
  grpc::Status Batch(const std::vector<v1::BatchItem>& items, v1::BatchSummary* summary) {
    for (size_t i = 0; i < items.size(); ++i) {
      for (auto [field, s] :
           {std::pair{"key", ValidateKey(items[i].key())}, std::pair{"value", ValidateValue(items[i].value())}}) {
        if (!s.ok()) return BadField(field, "item " + std::to_string(i) + ": " + s.error_message());
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (const v1::BatchItem& item : items) {
      summary->set_items(summary->items() + 1);
      summary->set_value_bytes(summary->value_bytes() + static_cast<int64_t>(item.value().size()));
      bool created = PutLocked(item.key(), item.value());
      summary->set_created(summary->created() + (created ? 1 : 0));
      summary->set_updated(summary->updated() + (created ? 0 : 1));
    }
    return grpc::Status::OK;
  }

  // Takes the snapshot of existing keys (when asked) and registers the Monitor in one critical section.
  std::shared_ptr<Watcher> Watch(grpc::ServerContext* ctx, const v1::WatchRequest& request) {
    auto watcher = std::make_shared<Watcher>(Watcher{ctx, request.pattern(), {}});
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, entry] : entries_) {  // std::map: byte order
      if (request.include_existing() && Matches(request.pattern(), key)) {
        Queue(watcher.get(), key, entry)->set_existing(true);
      }
    }
    watchers_.push_back(watcher);
    return watcher;
  }

  void Unwatch(const Watcher* watcher) {
    std::lock_guard<std::mutex> lock(mu_);
    watchers_.erase(
        std::remove_if(watchers_.begin(), watchers_.end(), [&](const auto& w) { return w.get() == watcher; }),
        watchers_.end());
  }

  // Waits for the Monitor's next event; CANCELLED when its call is over first (also at shutdown).
  grpc::Status Next(Watcher* watcher, v1::WatchEvent* event) {
    std::unique_lock<std::mutex> lock(mu_);
    while (watcher->events.empty()) {
      if (watcher->ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      changed_.wait_for(lock, std::chrono::milliseconds(20));
    }
    *event = std::move(watcher->events.front());
    watcher->events.pop_front();
    return grpc::Status::OK;
  }

  // Open Monitors whose pattern starts with prefix; one whose call is over counts as ended at once.
  size_t Watchers(const std::string& prefix) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::count_if(watchers_.begin(), watchers_.end(), [&](const auto& w) {
      return w->pattern.compare(0, prefix.size(), prefix) == 0 && !w->ctx->IsCancelled();
    });
  }

  // The keys that start with prefix (all of them for an empty prefix) and their value bytes.
  void Totals(const std::string& prefix, v1::InventoryStatus* inventory) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, entry] : entries_) {
      if (key.compare(0, prefix.size(), prefix) != 0) continue;
      inventory->set_key_count(inventory->key_count() + 1);
      inventory->set_total_value_bytes(inventory->total_value_bytes() + static_cast<int64_t>(entry.value.size()));
    }
  }

 private:
  struct Entry {
    std::string value;
    int64_t version = 0;
  };

  v1::WatchEvent* Queue(Watcher* watcher, const std::string& key, const Entry& entry) {
    v1::WatchEvent& event = watcher->events.emplace_back();
    event.set_key(key);
    event.set_value(entry.value);
    event.set_version(entry.version);
    return &event;
  }

  // Writes one key and queues its event for the matching Monitors; true when the key is new.
  bool PutLocked(const std::string& key, const std::string& value) {
    Entry& entry = entries_[key];
    bool created = entry.version == 0;
    entry.version++;
    entry.value = value;
    for (const auto& watcher : watchers_) {
      if (Matches(watcher->pattern, key)) Queue(watcher.get(), key, entry);
    }
    changed_.notify_all();
    return created;
  }

  std::mutex mu_;  // guards the entries and the watchers together
  std::condition_variable changed_;
  std::map<std::string, Entry> entries_;
  std::vector<std::shared_ptr<Watcher>> watchers_;
};

}  // namespace stock
