//! Shared test helpers.
#![allow(dead_code)]
pub mod emulator;
pub mod manifest_corpus;
pub mod cli;
