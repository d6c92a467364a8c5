//! The one integration-test binary. Each area of the product has a module; `support` holds the
//! shared helpers (an emulator on port 0, temporary policy directories, the real binary).

mod cli;
mod client;
mod emulator;
mod hardening;
mod manifest;
mod support;
mod watch;
