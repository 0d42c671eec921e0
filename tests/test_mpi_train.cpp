// `mpirun -np 2 pmpl train` as users start it (these tests start mpirun themselves): two processes
// with --sync-bn end a PMPL search with the weights and fixing decisions of one process with the
// combined batch; killing one process ends the job on both; ranks started with different flags
// are refused on every rank.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "data/fashion_mnist.h"
#include "engine/io/safetensors.h"
#include "tests/run_fixtures.h"

namespace pmpl {
namespace {

namespace fs = std::filesystem;

#ifdef PMPL_MPIRUN
constexpr const char* kMpirun = PMPL_MPIRUN;
#else
constexpr const char* kMpirun = nullptr;
#endif
constexpr const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";
constexpr const char* kRootOk = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 ";

#define REQUIRE_MPIRUN_AND_DATA()                                                              \
  if (kMpirun == nullptr) GTEST_SKIP() << "pmpl was built without MPI";                       \
  if (!fs::is_directory(kFashionMnist)) GTEST_SKIP() << "dataset-fashion-mnist is not installed"

// 160 training and 160 validation images of the real Fashion-MNIST, made once per test binary.
std::string tiny_fashion_mnist() {
  static const std::string root = [] {
    const fs::path dir = fs::temp_directory_path() / ("pmpl_mpi_data_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    test::remove_at_exit(dir.string());
    data::convert_fashion_mnist(dir.string(), kFashionMnist, 160);
    return dir.string();
  }();
  return root;
}

struct TempDir {
  std::string path;
  explicit TempDir(const std::string& name)
      : path((fs::temp_directory_path() / ("pmpl_mpi_" + std::to_string(::getpid()) + "_" + name)).string()) {
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

struct Result {
  int code;
  std::string output;
};

Result shell(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  Result r{-1, ""};
  if (pipe == nullptr) return r;
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) r.output += buffer.data();
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// A PMPL search on the tiny set: alphas that move fast, so enhancers get fixed by the threshold.
std::string search_flags(const std::string& data, int epochs) {
  return "--data " + data + " --epochs " + std::to_string(epochs) +
         " --model mobilenetv2_mp --width 0.25 --small-input --input-size 28 --force-fix-epoch 1"
         " --lr 0.05 --arch-lr 0.3 --fix-threshold 0.05 --arch-split 0.25 --dropout 0 --workers 1"
         " --log-interval 1 --seed 3 --sync-bn --quiet";
}

std::vector<nlohmann::json> fixing_events(const std::string& dir) {
  std::vector<nlohmann::json> events;
  std::ifstream in(dir + "/log.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.value("event", "") == "fixed") {
      j.erase("probs");  // compared to rounding below, with the weights
      events.push_back(j);
    }
  }
  return events;
}

// Largest relative difference (L2 per tensor) over the network's tensors of two checkpoints.
double largest_difference(const std::string& a_path, const std::string& b_path, int* compared) {
  const TensorFile a = load_safetensors(a_path), b = load_safetensors(b_path);
  double worst = 0.0;
  *compared = 0;
  for (const auto& [name, expected] : b.tensors) {
    if (name.rfind("optim.", 0) == 0) continue;
    const std::vector<double> x = a.find(name).to(DType::kF64).to_vector<double>();
    const std::vector<double> y = expected.to(DType::kF64).to_vector<double>();
    if (x.size() != y.size()) return 1e300;
    double d = 0, n = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      d += (x[i] - y[i]) * (x[i] - y[i]);
      n += y[i] * y[i];
    }
    // Biases start at zero, so after one step they are the update itself, and some are zero in
    // exact arithmetic (a bias whose gradient cancels in the next batchnorm holds rounding noise
    // near 1e-11): a norm below 1e-2, a parameter's scale, is measured against 1e-2.
    worst = std::max(worst, std::sqrt(d) / std::max(std::sqrt(n), 1e-2));
    ++*compared;
  }
  return worst;
}

// One training step of a fixed Meta-Pooling network (pools, strip attention, synchronised
// batchnorm): two processes with 8 images each end with the weights, batchnorm statistics and
// momentum of one process with the 16, to 1e-6.
//
// Only one step: from the second on, float32 rounding differences (the gradient summed over two
// halves instead of in one GEMM, ~1e-7) flip ReLU6 masks of the pre-activations that lie within
// rounding of the kink, and this small network's gradients move by ~3e-3 for any 1e-7 change of
// its weights. PyTorch's MobileNetV2 measures the same (docs/ARCHITECTURE.md, "Data parallel"),
// so a tolerance over several steps could only be loose. Several steps of a network without
// batchnorm or ReLU6 kinks near the data are compared in Mpi.BucketedGradientsEqualOneProcessOnTheUnion.
//
// The same sensitivity makes even the first step's forward pass matter: oneDNN's AVX2 sgemm
// computes the rows at a thread's or a call's edge in a tail kernel, so a row's bits depend on
// how many rows the call has and how many threads share it (measured on an AMD EPYC: a few rows
// per 1x1 conv), and this network turns those ~1e-7 differences into 3e-2 of the first gradient
// (in f64 too: a 1e-6 change of the input moves it by 2e-2). Both runs therefore take their
// GEMMs from PMPL_REFERENCE_GEMM=1 (each element summed in order, whatever the rows and threads),
// so what differs is only what data parallelism changes: the order of the gradient sums.
TEST(MpiTrain, OneStepOnTwoProcessesEqualsOneProcessWithTheCombinedBatch) {
  constexpr const char* kReferenceGemm = "PMPL_REFERENCE_GEMM=1 ";
  REQUIRE_MPIRUN_AND_DATA();
  const std::string data = tiny_fashion_mnist();
  TempDir two("step_two"), one("step_one");
  const std::string genotype = two.path + ".genotype.json";
  {
    nlohmann::json list = nlohmann::json::array();
    const char* ops[] = {"strip", "max3", "avg5", "skip", "max7", "avg3", "max5", "avg7"};
    for (int i = 0; i < 16; ++i) {
      list.push_back({{"name", "features." + std::to_string(i + 2) + ".enhancer"}, {"ops", {ops[i % 8]}}});
    }
    std::ofstream(genotype) << nlohmann::json{{"format", "pmpl-genotype"}, {"version", 1}, {"enhancers", list}}.dump();
  }
  const std::string flags = "--data " + data + " --model mobilenetv2_mp --genotype " + genotype +
                            " --width 0.25 --small-input --input-size 28 --epochs 1 --lr 0.05 --dropout 0"
                            " --workers 1 --seed 3 --sync-bn --quiet --save-interval 1 --max-steps 2";
  const Result r = shell(std::string(kRootOk) + kReferenceGemm + kMpirun + " -np 2 " PMPL_CLI " train " + flags +
                         " --batch-size 8 --output " + two.path);
  ASSERT_EQ(r.code, 0) << r.output;
  // The same flags in this process: --max-steps 2 stops before step 2 is saved, so each run
  // keeps the checkpoint of step 1.
  const Result single =
      shell(std::string(kReferenceGemm) + PMPL_CLI " train " + flags + " --batch-size 16 --output " + one.path);
  ASSERT_EQ(single.code, 0) << single.output;
  int compared = 0;
  const double worst = largest_difference(two.path + "/checkpoint-last.safetensors",
                                          one.path + "/checkpoint-last.safetensors", &compared);
  EXPECT_LT(worst, 1e-6);
  EXPECT_GT(compared, 200);
  // The first gradient itself (the momentum buffer after one step): float32 sums over 12,544
  // rows in another order, so rounding-level agreement (measured 1.1e-6 with oneDNN on an
  // AVX-512 machine, 4.3e-6 with the reference GEMM on an AMD EPYC).
  const Tensor m2 = load_safetensors(two.path + "/checkpoint-last.safetensors").find("optim.weights.momentum");
  const Tensor m1 = load_safetensors(one.path + "/checkpoint-last.safetensors").find("optim.weights.momentum");
  const std::vector<float> x = m2.to_vector<float>(), y = m1.to_vector<float>();
  double d = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    d += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    n += static_cast<double>(y[i]) * y[i];
  }
  EXPECT_LT(std::sqrt(d / n), 1e-5);
  fs::remove(genotype);
}

// A whole (short) search on two processes: the ranks fix the same ops at the same steps (the
// trainer checks it after every step and stops the job otherwise), enhancers get fixed by the
// threshold and by force, and the genotype comes out complete.
TEST(MpiTrain, ASearchOnTwoProcessesFixesTheSameOpsOnEveryRank) {
  REQUIRE_MPIRUN_AND_DATA();
  const std::string data = tiny_fashion_mnist();
  TempDir two("search_two");
  const Result r = shell(std::string(kRootOk) + kMpirun + " -np 2 " PMPL_CLI " train " + search_flags(data, 2) +
                         " --batch-size 8 --output " + two.path);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto events = fixing_events(two.path);
  EXPECT_EQ(events.size(), 16u);
  int by_threshold = 0;
  for (const auto& e : events) by_threshold += e["why"] == "threshold";
  EXPECT_GT(by_threshold, 0) << "the search should fix some enhancers before the forced epoch";
  std::ifstream in(two.path + "/genotype.json");
  const nlohmann::json genotype = nlohmann::json::parse(in);
  for (const auto& e : genotype["enhancers"]) EXPECT_FALSE(e["ops"].empty()) << e.dump();
}

// --grad-accum on two processes: only each update's last batch all-reduces, on both ranks alike,
// including the epoch's shorter last group (10 batches of 8 per rank in groups of 3: 4 updates).
TEST(MpiTrain, AccumulatedGradientsAllReduceOncePerUpdate) {
  REQUIRE_MPIRUN_AND_DATA();
  const std::string data = tiny_fashion_mnist();
  TempDir two("accum_two");
  const Result r = shell(std::string(kRootOk) + kMpirun + " -np 2 " PMPL_CLI " train --data " + data +
                         " --model mobilenetv2 --width 0.25 --small-input --input-size 28 --epochs 1 --batch-size 8"
                         " --grad-accum 3 --workers 1 --log-interval 1 --quiet --output " + two.path);
  ASSERT_EQ(r.code, 0) << r.output;
  int steps = 0;
  std::ifstream in(two.path + "/log.jsonl");
  for (std::string line; std::getline(in, line);) steps += nlohmann::json::parse(line).value("type", "") == "step";
  EXPECT_EQ(steps, 4);
}

TEST(MpiTrain, DifferentFlagsOnTheRanksAreRefusedOnEveryRank) {
  REQUIRE_MPIRUN_AND_DATA();
  const std::string data = tiny_fashion_mnist();
  TempDir dir("mismatch");
  const std::string common = " train " + search_flags(data, 2) + " --batch-size 8 --output " + dir.path;
  const Result r = shell(std::string(kRootOk) + kMpirun + " -np 1 " PMPL_CLI + common + " : -np 1 " PMPL_CLI + common +
                         " --label-smoothing 0.2");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("pmpl (rank 1): error: rank 1: 1 of the 2 processes run another configuration than rank 0 "
                          "(this one differs in --label-smoothing"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("pmpl (rank 0): error: rank 0: 1 of the 2 processes"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.path + "/checkpoint-last.safetensors"));
}

// The children of `parent` named pmpl (the ranks mpirun started).
std::vector<pid_t> ranks_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string pid, comm, state;
    pid_t ppid = 0;
    if (stat >> pid >> comm >> state >> ppid && ppid == parent && comm == "(pmpl)") out.push_back(std::stoi(pid));
  }
  return out;
}

// Alive: the process exists and is not a zombie (a container's init may never reap those).
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string id, comm, state;
  return static_cast<bool>(stat >> id >> comm >> state) && state != "Z";
}

TEST(MpiTrain, KillingOneRankEndsTheJob) {
  REQUIRE_MPIRUN_AND_DATA();
  const std::string data = tiny_fashion_mnist();
  TempDir dir("kill");
  const std::string log = dir.path + ".out";
  const std::string command = std::string(kRootOk) + "exec " + kMpirun + " -np 2 " PMPL_CLI " train " +
                              search_flags(data, 1000) + " --batch-size 8 --output " + dir.path + " > " + log +
                              " 2>&1";
  const pid_t mpirun = fork();
  ASSERT_GE(mpirun, 0);
  if (mpirun == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until both ranks train (rank 0 has logged a step), then kill one.
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  std::vector<pid_t> ranks;
  while (Clock::now() - start < std::chrono::seconds(120)) {
    ranks = ranks_of(mpirun);
    std::ifstream in(dir.path + "/log.jsonl");
    std::string line;
    if (ranks.size() == 2 && std::getline(in, line)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(ranks.size(), 2u) << "mpirun did not start two pmpl processes";
  ASSERT_EQ(kill(ranks[1], SIGKILL), 0);
  // The job must end: the other rank and mpirun with it. (A generous bound: this checks for a
  // hang, not for speed; it ends in about a second.)
  int status = 0;
  pid_t done = 0;
  const auto killed = Clock::now();
  while ((done = waitpid(mpirun, &status, WNOHANG)) == 0 && Clock::now() - killed < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (done == 0) {
    kill(mpirun, SIGKILL);
    waitpid(mpirun, &status, 0);
    for (pid_t p : ranks) kill(p, SIGKILL);
    FAIL() << "the job went on after one of its processes was killed";
  }
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_FALSE(running(ranks[0])) << "the surviving rank is still running";
  std::ifstream in(log);
  const std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(output.find("stopped by the launcher"), std::string::npos) << output;
  fs::remove(log);
}

}  // namespace
}  // namespace pmpl
