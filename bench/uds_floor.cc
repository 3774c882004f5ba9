// The floor under every prediction: one round trip over a Unix socket pair to
// a peer that echoes 64 bytes back, the peer written in C++ and then in Python
// (as the runner is). Prints p50 and p99 in microseconds.
//
//   uds_floor [--round_trips N] [--python python3]
//   uds_floor --reply_bytes 1048576 [--tcp]
//
// --reply_bytes: the peer answers each 64-byte message with that many bytes
// (the floor under a large output: what the kernel and a wake-up cost to move
// it, with no copy or parse of ours). Both ends of a Unix socket ask for a
// 4 MiB SO_SNDBUF, as cog-server and the runner do. --tcp: over a loopback TCP
// connection instead (the client's side of a large request or response).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
ABSL_FLAG(int, reply_bytes, 64, "Bytes the peer answers each 64-byte message with");
ABSL_FLAG(bool, tcp, false, "Loopback TCP instead of a Unix socket pair");

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

bool WriteFull(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Two connected sockets: a Unix socket pair, or both ends of a loopback TCP
// connection (Nagle off, as an HTTP server and client have it).
bool Connect(bool tcp, int fds[2]) {
  if (!tcp) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return false;
    const int size = 4 << 20;
    for (int i = 0; i < 2; ++i) setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    return true;
  }
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return false;
  }
  fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fds[0] < 0 || connect(fds[0], reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return false;
  fds[1] = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  close(listener);
  const int on = 1;
  for (int i = 0; i < 2; ++i) setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  return fds[1] >= 0;
}

void Measure(const std::string& name, int fd, int round_trips, size_t reply_bytes) {
  char message[kMessage] = {};
  std::string reply(reply_bytes, '\0');
  std::vector<double> latencies;
  latencies.reserve(round_trips);
  const int warm_up = std::min(1000, round_trips);
  for (int i = 0; i < round_trips + warm_up; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (!WriteFull(fd, message, kMessage) || !ReadFull(fd, reply.data(), reply.size())) {
      std::fprintf(stderr, "%s: the peer went away\n", name.c_str());
      std::exit(1);
    }
    if (i >= warm_up) {
      latencies.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    }
  }
  std::sort(latencies.begin(), latencies.end());
  std::printf("| %s | %.1f | %.1f |\n", name.c_str(), latencies[latencies.size() / 2],
              latencies[latencies.size() * 99 / 100]);
}

pid_t Spawn(int fds[2], const std::vector<std::string>& argv, size_t reply_bytes) {
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (argv.empty()) {
      char message[kMessage];
      const std::string reply(reply_bytes, 'x');
      while (ReadFull(fds[1], message, kMessage)) {
        if (!WriteFull(fds[1], reply.data(), reply.size())) break;
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
  const size_t reply_bytes = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_reply_bytes)));
  const bool tcp = absl::GetFlag(FLAGS_tcp);
  std::printf("| floor | p50 µs | p99 µs |\n|---|---|---|\n");
  // As the runner sends: socket.sendall() of a bytes object.
  const std::string python_peer =
      "import socket\n"
      "s = socket.socket(fileno=3)\n"
      "reply = b'x' * " + std::to_string(reply_bytes) + "\n"
      "while True:\n"
      "    data = s.recv(64)\n"
      "    if not data: break\n"
      "    s.sendall(reply)\n";
  const std::string what =
      std::string(tcp ? "loopback TCP" : "Unix socket") + " round trip, " +
      (reply_bytes == kMessage ? std::string("64 B each way")
                               : "64 B out, " + std::to_string(reply_bytes) + " B back") +
      ", ";
  const std::vector<std::pair<const char*, std::vector<std::string>>> peers = {
      {"C++", {}}, {"Python", {absl::GetFlag(FLAGS_python), "-I", "-S", "-c", python_peer}}};
  for (const auto& [name, command] : peers) {
    int fds[2];
    if (!Connect(tcp, fds)) {
      std::perror("connect");
      return 1;
    }
    pid_t pid = Spawn(fds, command, reply_bytes);
    Measure(what + name + " peer", fds[0], round_trips, reply_bytes);
    close(fds[0]);
    waitpid(pid, nullptr, 0);
  }
  return 0;
}
