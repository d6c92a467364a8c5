//! The token never shows: not in the client's logs at the most verbose level, not in errors,
//! not in Debug output.

use std::io::Write;
use std::sync::Arc;

use tfe_policy_sync::client::{ClientOptions, RequestObserver};
use tfe_policy_sync::emulator::{Fault, Faults};
use tfe_policy_sync::model::{Mode, PolicyName};

use super::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs [`whole_session_at_trace_level`] in a process of its own. Bug (in this test): run
/// beside the others, it sometimes saw no `response` line at all. tracing caches each
/// callsite's interest process-wide, and a callsite first reached on another test's thread
/// (with no subscriber) could stay cached as "never" for this test's thread-local one.
#[test]
fn trace_logs_of_a_whole_session_never_hold_the_token() {
    let name = "client::secrecy::whole_session_at_trace_level";
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .output()
        .expect("the test binary runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[tokio::test]
#[ignore = "run in a process of its own by trace_logs_of_a_whole_session_never_hold_the_token"]
async fn whole_session_at_trace_level() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so a thread-local default sees every event.
    let _guard = tracing::subscriber::set_default(subscriber);

    let running = start(config()).await;
    running.emulator.set_faults(Faults {
        before: Fault::next(1),
        after: Fault::next(1).mutating(),
        ..Faults::default()
    });
    let client = client_of(&running, opts());
    let name = PolicyName::new("logged").unwrap();
    let p = client.create(&name, Mode::Advisory).await.unwrap();
    client.upload(&p.id, b"main = rule { true }").await.unwrap();
    client.download(&p.id).await.unwrap();
    client
        .set_mode(&p.id, &name, Mode::HardMandatory)
        .await
        .unwrap();
    client.list_policies().await.unwrap();
    client.delete(&p.id).await.unwrap();
    let wrong = client_for(&running.base_url(), ORG, "sEcReT-other.atlasv1.x", opts());
    let err = wrong.list_policies().await.unwrap_err();
    assert!(!format!("{err:?}").contains("sEcReT"));

    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("response"), "the log is not empty: {log}");
    assert!(log.contains("retrying"), "retries are logged: {log}");
    assert!(!log.contains(SECRET), "the token is in the log");
    assert!(!log.contains("atlasv1"), "part of a token is in the log");
}

#[test]
fn debug_of_options_and_clients_never_holds_the_token() {
    struct Quiet;
    impl RequestObserver for Quiet {
        fn on_response(&self, _: &str, _: Option<u16>) {}
    }
    let options = ClientOptions {
        observer: Some(Arc::new(Quiet)),
        ..ClientOptions::default()
    };
    let conn = connection("https://tfe.example.com", ORG, SECRET);
    let client = tfe_policy_sync::client::Client::new(&conn, options.clone()).unwrap();
    let shown = format!("{options:?} {client:?} {client:#?} {conn:?} {conn:#?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("Token(***)"), "{shown}");
}
