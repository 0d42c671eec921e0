// The `pmpl` entry point: git-style subcommands. A user's mistake (bad flag, bad file, bad
// shape) prints one line and exits 2; a bug in pmpl exits 1 with the details.
#include <cstdio>
#include <exception>
#include <string>

#include "engine/comm.h"

#include "engine/error.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
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
    if (pmpl::mpi_running()) pmpl::abort_job(code);
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
