// The `pmpl` entry point: git-style subcommands. A user's mistake (bad flag, bad file, bad
// shape) prints one line and exits 2; a bug in pmpl exits 1 with the details.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <exception>
#include <string>
#include <thread>

#include "engine/comm.h"

#include "engine/error.h"
#include "tools/commands.h"

namespace {

// Under mpirun, the launcher ends the surviving processes with SIGTERM when one of them dies:
// each says so in one line (async-signal-safe: a prepared buffer and write) before going.
char g_term_message[160];

void on_terminate(int) {
  const ssize_t ignored = ::write(STDERR_FILENO, g_term_message, std::strlen(g_term_message));
  static_cast<void>(ignored);
  ::_exit(143);
}

}  // namespace

int main(int argc, char** argv) {
  if (pmpl::launched_by_mpi()) {
    std::snprintf(g_term_message, sizeof g_term_message,
                  "pmpl (rank %d): stopped by the launcher (another process of the job has ended)\n",
                  pmpl::launcher_rank());
    std::signal(SIGTERM, on_terminate);
  }
  CLI::App app{"pmpl: Progressive Meta-Pooling Learning for lightweight image classifiers"};
  app.set_version_flag("--version", std::string("pmpl ") + PMPL_VERSION);
  app.require_subcommand(1);
  pmpl::cli::Runner run;
  pmpl::cli::add_train_command(app, run);
  pmpl::cli::add_export_command(app, run);
  pmpl::cli::add_data_command(app, run);
  pmpl::cli::add_summary_command(app, run);
  pmpl::cli::add_forward_command(app, run);
  pmpl::cli::add_bench_command(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "pmpl: error: %s (see pmpl --help)\n", e.what());
    return 2;
  } catch (const pmpl::Error& e) {  // a subcommand's own checks of its flags
    std::fprintf(stderr, "pmpl: error: %s\n", e.what());
    return 2;
  }
  // Under mpirun, a failing process names its rank and ends the whole job: the others would
  // otherwise wait for it in their next collective.
  const int rank = pmpl::launcher_rank();
  const std::string who = rank >= 0 ? " (rank " + std::to_string(rank) + ")" : "";
  auto fail = [&](const char* kind, const char* what, int code) {
    std::fprintf(stderr, "pmpl%s: %s%s\n", who.c_str(), kind, what);
    std::fflush(stderr);
    if (pmpl::mpi_running()) {
      // A moment for the other ranks, which often fail at the same check, to say so too before
      // the abort takes them down.
      std::this_thread::sleep_for(std::chrono::seconds(1));
      pmpl::abort_job(code);
    }
    return code;
  };
  try {
    run();
  } catch (const pmpl::Error& e) {
    return fail("error: ", e.what(), 2);
  } catch (const pmpl::InternalError& e) {
    return fail("internal error (a bug in pmpl, please report it): ", e.what(), 1);
  } catch (const std::exception& e) {
    return fail("internal error (a bug in pmpl, please report it): ", e.what(), 1);
  }
  return 0;
}
