//! Shared test helpers.
#![allow(dead_code)]
