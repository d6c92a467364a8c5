//! The emulator, over HTTP on port 0: every documented behaviour of the Policies API, its error
//! answers, pagination, rate limits, fault injection, robustness against bad input, and golden
//! comparisons with the samples of the seed's API document.

mod api;
mod cli;
mod errors;
mod faults;
mod golden;
mod list;
mod ratelimit;
mod robustness;
