//! Shared test helpers.
#![allow(dead_code)]
pub mod cli;
pub mod emulator;
pub mod manifest_corpus;
