//! Running the real `tfe-policy-sync` binary against an in-process emulator, with a clean
//! environment: no inherited `TFE_*`/`TF_TOKEN_*` variables and an empty `HOME`, so a test sees
//! only the configuration it sets.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tempfile::TempDir;
use tfe_policy_sync::emulator::Running;

use super::emulator::{ORG, TOKEN};

pub const BIN: &str = env!("CARGO_BIN_EXE_tfe-policy-sync");

/// A policy directory in a temporary folder.
pub struct PolicyDir {
    pub tmp: TempDir,
}

impl PolicyDir {
    /// `policies.yaml` with `manifest`, plus `files` (relative path, contents).
    pub fn new(manifest: &str, files: &[(&str, &str)]) -> Self {
        let dir = PolicyDir {
            tmp: tempfile::tempdir().unwrap(),
        };
        dir.write("policies.yaml", manifest);
        for (path, code) in files {
            dir.write(path, code);
        }
        dir
    }

    /// A directory with `n` policies `policy-000`… in modes that cycle through all three, each
    /// with distinct code.
    pub fn generated(n: usize) -> Self {
        let mut manifest = String::from("policies:\n");
        let modes = ["hard-mandatory", "soft-mandatory", "advisory"];
        let dir = PolicyDir {
            tmp: tempfile::tempdir().unwrap(),
        };
        for i in 0..n {
            let name = format!("policy-{i:03}");
            manifest.push_str(&format!("  - name: {name}\n    mode: {}\n", modes[i % 3]));
            dir.write(&format!("{name}.sentinel"), &code_for(&name));
        }
        dir.write("policies.yaml", &manifest);
        dir
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write(&self, rel: &str, contents: &str) {
        let path = self.tmp.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

/// The code `PolicyDir::generated` gives the policy `name`.
pub fn code_for(name: &str) -> String {
    format!("# {name}\nmain = rule {{ true }}\n")
}

/// What a run of the binary printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A command line for the binary with a clean environment.
pub struct Cmd {
    cmd: tokio::process::Command,
    pub home: TempDir,
}

impl Cmd {
    pub fn new(args: &[&str]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        Cmd { cmd, home }
    }

    /// `command --dir DIR --address URL` with `TFE_TOKEN` set to the emulator's token and
    /// `TFE_ORGANIZATION` to its organization.
    pub fn against(server: &Running, command: &str, dir: &Path) -> Self {
        let dir = dir.to_str().unwrap();
        let url = server.base_url();
        Cmd::new(&[command, "--dir", dir, "--address", &url])
            .env("TFE_TOKEN", TOKEN)
            .env("TFE_ORGANIZATION", ORG)
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Self {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    pub fn home(&self) -> PathBuf {
        self.home.path().to_owned()
    }

    pub fn command(&mut self) -> &mut tokio::process::Command {
        &mut self.cmd
    }

    pub async fn run(mut self) -> Run {
        let out = self.cmd.output().await.expect("the binary runs");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
