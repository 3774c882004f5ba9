// KeyedExecutor: a small pool of threads that runs tasks in order per key.
//
// Tasks given the same key run one at a time, in the order they were given;
// tasks of different keys run in parallel on up to `threads` threads. The core
// uses it for a prediction's file work (downloads, uploads, data URIs), so that
// slow transfers block neither the runner's reader thread nor a request thread,
// and a prediction's events still arrive in order.
//
// Thread-safe. The destructor runs every queued task, then joins.
#ifndef COG_SERVER_KEYED_EXECUTOR_H_
#define COG_SERVER_KEYED_EXECUTOR_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace cog {

class KeyedExecutor {
 public:
  explicit KeyedExecutor(int threads);
  ~KeyedExecutor();
  KeyedExecutor(const KeyedExecutor&) = delete;
  KeyedExecutor& operator=(const KeyedExecutor&) = delete;

  void Run(const std::string& key, std::function<void()> task);

 private:
  void Work();

  absl::Mutex mu_;
  // A key is here while it has tasks queued or running.
  absl::flat_hash_map<std::string, std::deque<std::function<void()>>> queues_ ABSL_GUARDED_BY(mu_);
  // Keys whose next task may start (none of theirs is running).
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace cog

#endif  // COG_SERVER_KEYED_EXECUTOR_H_
