#include "server/keyed_executor.h"

#include <algorithm>
#include <utility>

namespace cog {

KeyedExecutor::KeyedExecutor(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { Work(); });
}

KeyedExecutor::~KeyedExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

void KeyedExecutor::Run(const std::string& key, std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  auto [it, first] = queues_.try_emplace(key);
  it->second.push_back(std::move(task));
  // Otherwise the key is ready already, or its running task's thread will
  // take this one next.
  if (first) ready_.push_back(key);
}

void KeyedExecutor::Work() {
  absl::MutexLock lock(&mu_);
  while (true) {
    auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return stopping_ || !ready_.empty();
    };
    mu_.Await(absl::Condition(&has_work));
    if (ready_.empty()) return;  // stopping, and nothing is left to run
    std::string key = std::move(ready_.front());
    ready_.pop_front();
    std::function<void()> task = std::move(queues_[key].front());
    mu_.Unlock();
    task();
    task = nullptr;  // whatever it captured goes before the next one starts
    mu_.Lock();
    auto it = queues_.find(key);
    it->second.pop_front();
    if (it->second.empty()) {
      queues_.erase(it);
    } else {
      ready_.push_back(std::move(key));
    }
  }
}

}  // namespace cog
