// How fast cog-server uploads a Path output (cog::UploadFile, libcurl PUT) on
// loopback, beside the floor: the same file sent by this process itself with
// sendfile(2) to the same receiver, in the same run.
//
//   bazel run -c opt //bench:upload_bench -- [--mib 100] [--rounds 7]
//
// The receiver is a plain socket server on an ephemeral port that reads each
// request's head, then its Content-Length bytes into a 4 MiB buffer it never
// looks at, and answers 200: the cheapest peer there is, so that the figures
// are the sender's. Prints MB/s (median, min, max) and the sending thread's
// CPU for each.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/http_transfer.h"

ABSL_FLAG(int, mib, 100, "Size of the file, MiB");
ABSL_FLAG(int, rounds, 7, "Uploads of each kind");

namespace {

using Clock = std::chrono::steady_clock;

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  return address;
}

// Accepts connections one at a time; each carries requests with a
// Content-Length body until the client closes it.
class Receiver {
 public:
  Receiver() {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = Loopback(0);
    socklen_t length = sizeof(address);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        listen(listener_, 16) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      std::perror("receiver");
      std::exit(1);
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Receiver() {
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    thread_.join();
  }
  int port() const { return port_; }
  int64_t received() const { return received_; }

 private:
  void Serve() {
    std::vector<char> buffer(4 << 20);
    while (true) {
      const int connection = accept(listener_, nullptr, nullptr);
      if (connection < 0) return;
      std::string head;
      while (true) {
        const ssize_t n = recv(connection, buffer.data(), buffer.size(), 0);
        if (n <= 0) break;
        head.append(buffer.data(), static_cast<size_t>(n));
        const size_t end = head.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        int64_t length = 0;
        const size_t at = head.find("Content-Length: ");
        if (at != std::string::npos && at < end) {
          absl::SimpleAtoi(head.substr(at + 16, head.find("\r\n", at) - at - 16), &length);
        }
        int64_t got = static_cast<int64_t>(head.size() - end - 4);
        while (got < length) {
          const ssize_t m = recv(connection, buffer.data(),
                                 static_cast<size_t>(std::min<int64_t>(length - got, buffer.size())), 0);
          if (m <= 0) break;
          got += m;
        }
        received_ += got;
        head.clear();
        const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        if (send(connection, answer, sizeof(answer) - 1, MSG_NOSIGNAL) < 0) break;
      }
      close(connection);
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<int64_t> received_{0};
  std::thread thread_;
};

// The floor: one connection, the head, then the file by sendfile(2).
void SendFile(int port, const std::string& path, int64_t size) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = Loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  const std::string head = absl::StrCat("PUT /floor HTTP/1.1\r\nHost: x\r\nContent-Length: ", size, "\r\n\r\n");
  send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  const int file = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  off_t offset = 0;
  while (offset < size) {
    if (sendfile(fd, file, &offset, static_cast<size_t>(size - offset)) <= 0) break;
  }
  char answer[256];
  recv(fd, answer, sizeof(answer), 0);
  close(file);
  close(fd);
}

// CPU time (user + system) of the calling thread so far, s.
double ThreadCpu() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

struct Sample {
  double seconds;
  double cpu;  // of the sending thread
};

template <typename Send>
Sample Timed(Send send) {
  const Clock::time_point start = Clock::now();
  const double cpu = ThreadCpu();
  send();
  return {std::chrono::duration<double>(Clock::now() - start).count(), ThreadCpu() - cpu};
}

void Report(const char* what, std::vector<Sample> samples, int64_t size) {
  std::sort(samples.begin(), samples.end(), [](const Sample& a, const Sample& b) { return a.seconds < b.seconds; });
  auto mbps = [size](double s) { return static_cast<double>(size) / s / 1e6; };
  std::vector<double> cpu;
  for (const Sample& sample : samples) cpu.push_back(sample.cpu);
  std::sort(cpu.begin(), cpu.end());
  std::printf("%-34s median %6.0f MB/s (min %5.0f, max %5.0f); sender CPU %.1f ms median, %.2f ms/MiB\n",
              what, mbps(samples[samples.size() / 2].seconds), mbps(samples.back().seconds),
              mbps(samples.front().seconds), cpu[cpu.size() / 2] * 1e3,
              cpu[cpu.size() / 2] * 1e3 / (static_cast<double>(size) / (1 << 20)));
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int64_t size = static_cast<int64_t>(absl::GetFlag(FLAGS_mib)) << 20;
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  const char* tmpdir = std::getenv("TMPDIR");
  std::string path_template = absl::StrCat(tmpdir != nullptr && *tmpdir ? tmpdir : "/tmp", "/cog-upload-bench-XXXXXX");
  char* path = path_template.data();
  const int fd = mkstemp(path);
  if (fd < 0) {
    std::perror("mkstemp");
    return 1;
  }
  absl::Cleanup remove_file = [path] { unlink(path); };
  {
    std::vector<char> block(1 << 20);
    for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>((i * 2654435761u) >> 13);
    for (int64_t written = 0; written < size; written += static_cast<int64_t>(block.size())) {
      if (write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
        std::perror("write");
        return 1;
      }
    }
  }
  close(fd);
  Receiver receiver;
  const std::string url = absl::StrCat("http://127.0.0.1:", receiver.port(), "/out.bin");
  cog::TransferOptions options;
  std::printf("%d MiB file, %d rounds each, interleaved, loopback\n", absl::GetFlag(FLAGS_mib), rounds);
  std::vector<Sample> floor, ours;
  for (int round = 0; round < rounds + 1; ++round) {  // the first of each is a warm-up
    const Sample floor_sample = Timed([&] { SendFile(receiver.port(), path, size); });
    absl::StatusOr<std::string> uploaded;
    const Sample ours_sample = Timed([&] { uploaded = cog::UploadFile(url, path, {}, options); });
    if (!uploaded.ok()) {
      std::fprintf(stderr, "upload failed: %s\n", std::string(uploaded.status().message()).c_str());
      return 1;
    }
    if (round > 0) {
      floor.push_back(floor_sample);
      ours.push_back(ours_sample);
    }
  }
  Report("floor: sendfile(2) to the receiver", floor, size);
  Report("cog::UploadFile (libcurl PUT)", ours, size);
  std::printf("received %lld bytes in all\n", static_cast<long long>(receiver.received()));
  return 0;
}
