// Subcommands of the `pmpl` CLI: each file tools/cmd_<name>.cpp registers one on the app and
// returns the function that runs it once the command line is parsed.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace pmpl::cli {

using Runner = std::function<void()>;

// `pmpl bench ...`: speed measurements (never tests).
void add_bench_command(CLI::App& app, Runner& run);
// `pmpl bench train`, `bench loader`, `bench infer`, `bench comm` and `bench kernels`, registered under `bench` by add_bench_command.
void add_bench_train_command(CLI::App* bench, Runner& run);
void add_bench_loader_command(CLI::App* bench, Runner& run);
void add_bench_infer_command(CLI::App* bench, Runner& run);
void add_bench_comm_command(CLI::App* bench, Runner& run);
void add_bench_kernels_command(CLI::App* bench, Runner& run);
// `pmpl export` and `pmpl infer`.
void add_export_command(CLI::App& app, Runner& run);
// `pmpl train` and `pmpl eval`.
void add_train_command(CLI::App& app, Runner& run);
// `pmpl data fashion-mnist|check`.
void add_data_command(CLI::App& app, Runner& run);
// `pmpl summary`: layers, parameter and MAC counts.
void add_summary_command(CLI::App& app, Runner& run);
// `pmpl forward`: evaluation-mode logits for a .npy batch.
void add_forward_command(CLI::App& app, Runner& run);

}  // namespace pmpl::cli
