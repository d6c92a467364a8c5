//! The `tfe-policy-sync` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    tfe_policy_sync::cli::main()
}
