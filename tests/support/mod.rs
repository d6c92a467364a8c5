//! Shared test helpers.
#![allow(dead_code)]
pub mod cli;
pub mod emulator;
pub mod hardening;
pub mod manifest_corpus;
