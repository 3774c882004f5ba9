// The floor under every prediction: one round trip over a Unix socket pair to
// a peer that echoes 64 bytes back, the peer written in C++ and then in Python
// (as the runner is). Prints p50 and p99 in microseconds.
//
//   uds_floor [--round_trips N] [--python python3]
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"

ABSL_FLAG(int, round_trips, 100000, "Round trips per peer");
ABSL_FLAG(std::string, python, "python3", "Interpreter for the Python peer");

namespace {

constexpr size_t kMessage = 64;

bool ReadFull(int fd, char* data, size_t size) {
  while (size > 0) {
    ssize_t n = read(fd, data, size);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

void Measure(const char* name, int fd, int round_trips) {
  char message[kMessage] = {};
  std::vector<double> latencies;
  latencies.reserve(round_trips);
  for (int i = 0; i < round_trips + 1000; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (write(fd, message, kMessage) != static_cast<ssize_t>(kMessage) || !ReadFull(fd, message, kMessage)) {
      std::fprintf(stderr, "%s: the peer went away\n", name);
      std::exit(1);
    }
    if (i >= 1000) {
      latencies.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    }
  }
  std::sort(latencies.begin(), latencies.end());
  std::printf("| Unix socket round trip, %s peer | %.1f | %.1f |\n", name, latencies[latencies.size() / 2],
              latencies[latencies.size() * 99 / 100]);
}

pid_t Spawn(int fds[2], const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (argv.empty()) {
      char message[kMessage];
      while (ReadFull(fds[1], message, kMessage)) {
        if (write(fds[1], message, kMessage) != static_cast<ssize_t>(kMessage)) break;
      }
      _exit(0);
    }
    if (fds[1] == 3) {
      fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep close-on-exec
    } else {
      dup2(fds[1], 3);
    }
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int round_trips = absl::GetFlag(FLAGS_round_trips);
  std::printf("| floor | p50 µs | p99 µs |\n|---|---|---|\n");
  const std::string python_peer =
      "import os\n"
      "while True:\n"
      "    data = os.read(3, 64)\n"
      "    if not data: break\n"
      "    os.write(3, data)\n";
  const std::vector<std::pair<const char*, std::vector<std::string>>> peers = {
      {"C++", {}}, {"Python", {absl::GetFlag(FLAGS_python), "-I", "-S", "-c", python_peer}}};
  for (const auto& [name, command] : peers) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 1;
    pid_t pid = Spawn(fds, command);
    Measure(name, fds[0], round_trips);
    close(fds[0]);
    waitpid(pid, nullptr, 0);
  }
  return 0;
}
