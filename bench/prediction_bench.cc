// Prediction benchmark: starts the real cog-server on a predictor and measures
// sequential requests from one client over REST (keep-alive) and gRPC:
// requests/s, p50, p99, the server's CPU and thread wake-ups and the client's
// CPU per request, and the RSS of the server and the runner. The same server's
// /health-check and gRPC Health, which never reach the runner, are measured in
// the same run as the floor. With --stream_first_item (bench/predictors/gen),
// also the time from the predictor's yield to the first item's arrival over
// gRPC PredictStream, with this C++ client.
//
//   prediction_bench --server PATH --predictor DIR [--body JSON] [--expect TEXT]
//                    [--requests N] [--grpc=false] [--floors=false]
//                    [--stream_first_item]
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cog/v1/predictor.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/runner_process.h"

ABSL_FLAG(std::string, server, "", "Path to the cog-server binary");
ABSL_FLAG(std::string, predictor, "", "Directory of the null predictor (cog.yaml)");
ABSL_FLAG(std::string, python, "python3", "Interpreter for the runner");
ABSL_FLAG(int, requests, 5000, "Requests per measurement");
ABSL_FLAG(int, warmup, 300, "Requests before each measurement");
ABSL_FLAG(std::string, body, R"({"input":{"s":"hello"}})", "The prediction request body");
ABSL_FLAG(std::string, expect, "\"output\":\"hello\"", "Text every REST response must contain");
ABSL_FLAG(std::string, name, "null predictor", "What the predictor is, for the report");
ABSL_FLAG(bool, grpc, true, "Also measure gRPC Predict");
ABSL_FLAG(bool, floors, true, "Also measure the no-runner floors (health checks)");
ABSL_FLAG(bool, stream_first_item, false,
          "For a predictor whose items are the wall-clock time (ns) they were yielded at "
          "(bench/predictors/gen): also measure yield -> arrival of the first item over gRPC "
          "PredictStream");
ABSL_FLAG(bool, upload_sink, false,
          "Start a local HTTP server that takes uploads and pass it as --upload-url");

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  std::string name;
  double per_second;
  double p50_us;
  double p99_us;
  int failures;
  double server_cpu_us;    // cog-server's user + system CPU per request
  double server_switches;  // the server threads' voluntary context switches per request
  double client_cpu_us;    // this client's CPU per request
};

// What a process has spent so far: CPU (its own threads, live and exited, in
// clock ticks) and its live threads' voluntary context switches, each a sleep
// and a wake-up.
struct ProcessCost {
  double cpu_us = 0;
  long switches = 0;
};

ProcessCost CostOf(pid_t pid) {
  ProcessCost cost;
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream stat(dir + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren != std::string::npos) {
    std::istringstream fields(text.substr(paren + 2));
    std::string field;
    long ticks = 0;
    for (int i = 3; fields >> field && i <= 15; ++i) {
      if (i == 14 || i == 15) ticks += std::stol(field);  // utime, stime
    }
    cost.cpu_us = 1e6 * static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator(dir + "/task", error)) {
    std::ifstream status(task.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) cost.switches += std::stol(line.substr(24));
    }
  }
  return cost;
}

double ClientCpuUs() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return 1e6 * static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

Result Measure(const std::string& name, pid_t server, const std::function<bool()>& request) {
  for (int i = 0; i < absl::GetFlag(FLAGS_warmup); ++i) request();
  const int n = absl::GetFlag(FLAGS_requests);
  const ProcessCost server_before = CostOf(server);
  const double client_before = ClientCpuUs();
  std::vector<double> latencies;
  latencies.reserve(n);
  int failures = 0;
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    if (!request()) ++failures;
    latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double client_cpu = ClientCpuUs() - client_before;
  const ProcessCost server_after = CostOf(server);
  std::sort(latencies.begin(), latencies.end());
  return {name,
          n / seconds,
          latencies[n / 2],
          latencies[static_cast<size_t>(n * 0.99)],
          failures,
          (server_after.cpu_us - server_before.cpu_us) / n,
          static_cast<double>(server_after.switches - server_before.switches) / n,
          client_cpu / n};
}

long RssKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

std::vector<pid_t> Children(pid_t pid) {
  std::vector<pid_t> children;
  std::ifstream file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t child;
  while (file >> child) children.push_back(child);
  return children;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string port_file = absl::StrCat("/tmp/cog-bench-ports-", getpid(), ".json");
  ::unlink(port_file.c_str());
  std::vector<std::string> command = {
      absl::GetFlag(FLAGS_server), "--working-directory", absl::GetFlag(FLAGS_predictor),
      "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0", "--port-file", port_file,
      "--python", absl::GetFlag(FLAGS_python)};
  // A real HTTP server on loopback receiving the uploads, as a bucket would.
  httplib::Server sink;
  std::thread sink_thread;
  std::atomic<int64_t> uploaded_bytes{0};
  if (absl::GetFlag(FLAGS_upload_sink)) {
    sink.Put(".*", [&uploaded_bytes](const httplib::Request& request, httplib::Response& response) {
      uploaded_bytes += static_cast<int64_t>(request.body.size());
      response.status = 200;
    });
    const int sink_port = sink.bind_to_any_port("127.0.0.1");
    sink_thread = std::thread([&sink] { sink.listen_after_bind(); });
    command.push_back("--upload-url");
    command.push_back(absl::StrCat("http://127.0.0.1:", sink_port, "/upload/"));
  }
  absl::StatusOr<std::unique_ptr<cog::RunnerProcess>> server =
      cog::RunnerProcess::Spawn({command, {"COG_LOG_LEVEL=warn"}, ""}, nullptr);
  if (!server.ok()) {
    std::fprintf(stderr, "cannot start cog-server: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  nlohmann::json ports;
  for (int i = 0; i < 3000 && ports.is_null(); ++i) {
    std::ifstream file(port_file);
    if (file) ports = nlohmann::json::parse(file, nullptr, false);
    if (ports.is_discarded()) ports = nullptr;
    if (ports.is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::unlink(port_file.c_str());
  if (ports.is_null()) {
    std::fprintf(stderr, "cog-server did not start\n");
    return 1;
  }
  httplib::Client http("127.0.0.1", ports["http"].get<int>());
  http.set_keep_alive(true);
  http.set_tcp_nodelay(true);
  for (int i = 0; i < 3000; ++i) {
    auto health = http.Get("/health-check");
    if (health && health->body.find("\"READY\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(256 << 20);
  auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", ports["grpc"].get<int>()),
                                           grpc::InsecureChannelCredentials(), arguments);
  auto stub = cog::v1::Predictor::NewStub(channel);

  const pid_t server_pid = (*server)->pid();
  const std::string body = absl::GetFlag(FLAGS_body);
  const std::string expect = absl::GetFlag(FLAGS_expect);
  const std::string name = absl::GetFlag(FLAGS_name);
  std::vector<Result> results;
  std::string stream_line;
  if (absl::GetFlag(FLAGS_floors)) {
    results.push_back(Measure("REST  GET /health-check (floor: no runner hop)", server_pid, [&] {
      auto response = http.Get("/health-check");
      return response && response->status == 200;
    }));
  }
  results.push_back(Measure("REST  POST /predictions (" + name + ")", server_pid, [&] {
    auto response = http.Post("/predictions", body, "application/json");
    return response && response->status == 200 && response->body.find(expect) != std::string::npos;
  }));
  if (absl::GetFlag(FLAGS_grpc)) {
    if (absl::GetFlag(FLAGS_floors)) {
      results.push_back(Measure("gRPC  Health (floor: no runner hop)", server_pid, [&] {
        grpc::ClientContext context;
        cog::v1::HealthResponse response;
        return stub->Health(&context, cog::v1::HealthRequest(), &response).ok();
      }));
    }
    cog::v1::PredictionRequest request;
    const nlohmann::json input = nlohmann::json::parse(body)["input"];
    for (const auto& [key, value] : input.items()) {
      auto& field = (*request.mutable_input()->mutable_fields())[key];
      if (value.is_string()) field.set_string_value(value.get<std::string>());
      else if (value.is_number()) field.set_number_value(value.get<double>());
      else if (value.is_boolean()) field.set_bool_value(value.get<bool>());
    }
    results.push_back(Measure("gRPC  Predict (" + name + ")", server_pid, [&] {
      grpc::ClientContext context;
      cog::v1::Prediction response;
      return stub->Predict(&context, request, &response).ok() &&
             response.status() == cog::v1::PREDICTION_STATUS_SUCCEEDED;
    }));
    if (absl::GetFlag(FLAGS_stream_first_item)) {
      // From the predictor's yield (the item's value, read off the same
      // clock) to the item's arrival here.
      std::vector<double> first_item_us;
      int failures = 0;
      const int warmup = absl::GetFlag(FLAGS_warmup);
      for (int i = 0; i < warmup + absl::GetFlag(FLAGS_requests); ++i) {
        grpc::ClientContext context;
        auto reader = stub->PredictStream(&context, request);
        cog::v1::PredictionEvent event;
        while (reader->Read(&event)) {
          if (!event.has_output() || event.output().index() != 0) continue;
          const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
          int64_t yielded = 0;
          if (!absl::SimpleAtoi(event.output().value().string_value(), &yielded)) {
            ++failures;
          } else if (i >= warmup) {
            first_item_us.push_back(static_cast<double>(now - yielded) / 1e3);
          }
        }
        if (!reader->Finish().ok()) ++failures;
      }
      std::sort(first_item_us.begin(), first_item_us.end());
      stream_line = first_item_us.empty()
                        ? std::string("gRPC PredictStream: no item carried a time "
                                      "(use bench/predictors/gen)")
                        : absl::StrFormat(
                              "gRPC PredictStream, the predictor's yield -> the first item here: "
                              "p50 %.1f us, p99 %.1f us (%d streams, %d errors)",
                              first_item_us[first_item_us.size() / 2],
                              first_item_us[first_item_us.size() * 99 / 100],
                              static_cast<int>(first_item_us.size()), failures);
    }
  }

  long runner_rss = 0;
  for (pid_t child : Children(server_pid)) runner_rss += RssKib(child);
  const long server_rss = RssKib(server_pid);

  std::printf("\n%s, one client, sequential, %d requests each (after %d warm-up)\n\n",
              name.c_str(), absl::GetFlag(FLAGS_requests), absl::GetFlag(FLAGS_warmup));
  std::printf("%-52s %9s %8s %8s %6s %12s %12s %12s\n", "", "req/s", "p50 us", "p99 us",
              "errors", "server CPU", "server wakes", "client CPU");
  for (const Result& r : results) {
    std::printf("%-52s %9.1f %8.1f %8.1f %6d %9.1f us %12.2f %9.1f us\n", r.name.c_str(),
                r.per_second, r.p50_us, r.p99_us, r.failures, r.server_cpu_us, r.server_switches,
                r.client_cpu_us);
  }
  std::printf("(CPU and wake-ups per request; a wake-up is a voluntary context switch of one of\n"
              " the server's threads. The runner's are not counted.)\n");
  if (!stream_line.empty()) std::printf("\n%s\n", stream_line.c_str());
  std::printf("\nRSS: cog-server %.1f MiB, runner %.1f MiB, total %.1f MiB\n", server_rss / 1024.0,
              runner_rss / 1024.0, (server_rss + runner_rss) / 1024.0);
  if (sink_thread.joinable()) {
    std::printf("uploads received: %.1f MiB\n", uploaded_bytes.load() / (1024.0 * 1024.0));
    sink.stop();
    sink_thread.join();
  }

  http.Post("/shutdown", "", "application/json");
  (*server)->WaitForExit(absl::Seconds(10));
  return 0;
}
