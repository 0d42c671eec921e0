// The pmpl binary as users meet it: help, exit codes, one-line errors.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace {

struct Result {
  int code;
  std::string output;  // stdout and stderr together
};

Result run_cli(const std::string& args) {
  const std::string command = std::string(PMPL_CLI) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  Result result{-1, ""};
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) result.output += buffer.data();
  const int status = pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(Cli, HelpListsTheSubcommands) {
  const Result r = run_cli("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("bench"), std::string::npos) << r.output;
}

TEST(Cli, UnknownFlagIsOneLineAndExitCode2) {
  const Result r = run_cli("bench ops --no-such-flag");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(count_lines(r.output), 1) << r.output;
}

TEST(Cli, BadValueIsOneLineAndExitCode2) {
  const Result r = run_cli("bench ops --batch-size 0");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find("--batch-size"), std::string::npos) << r.output;
}

TEST(Cli, MissingBaselineFileIsOneLineAndExitCode2) {
  const Result r = run_cli("bench ops --batch-size 1 --repeat 1 --warmup 0 --filter strip "
                           "--baseline /nonexistent/baseline.json");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("/nonexistent/baseline.json"), std::string::npos) << r.output;
}

TEST(Cli, BenchOpsPrintsATable) {
  const Result r = run_cli("bench ops --batch-size 1 --repeat 1 --warmup 0 --filter pool_k3");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("maxpool_k3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("avgpool_k3"), std::string::npos) << r.output;
}

}  // namespace
