//! `tfe-policy-sync` keeps the Sentinel policies of a Terraform Enterprise / HCP Terraform
//! organization equal to a policy directory in git.
//!
//! The crate is layered one way, with I/O at the edges and pure logic in the middle:
//!
//! | module | owns | I/O |
//! |---|---|---|
//! | [`model`] | modes, names, ids, desired and actual state | none |
//! | [`manifest`] | reading and validating a policy directory into a [`model::DesiredState`] | filesystem |
//! | [`config`] | address, organization and token resolution; the token as a secret | env, files |
//! | [`client`] | the Policies API client: wire types, pacing, retries, error mapping | HTTP |
//! | [`plan`] | the pure planner: desired + actual → [`plan::Plan`] | none |
//! | [`apply`] | executing a plan with bounded concurrency | HTTP via [`client`] |
//! | [`report`] | human, JSON and Markdown renderings of a plan or its outcome | none (`impl Write`) |
//! | [`reconcile`] | one reconcile: load → fetch → plan → apply | composes the above |
//! | [`watch`] | the daemon: reconcile on file change and on a timer, drift, health and metrics | files, HTTP server, signals |
//! | [`cli`] | command-line flags and the commands behind them | process |
//! | [`emulator`] | an in-memory Policies API server for trials and tests | HTTP server |
//!
//! The emulator never imports the reconciler and the reconciler never imports the emulator.

pub mod apply;
pub mod cli;
pub mod client;
pub mod config;
pub mod emulator;
pub mod logging;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod watch;
