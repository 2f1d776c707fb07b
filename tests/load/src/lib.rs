//! `holdline-load`: a load tool that proves, under spikes and faults, that no call is lost.
//!
//! It sends requests on an open-model schedule (no coordinated omission, no cap on requests in
//! flight), gives every request a unique id and a checkable body, matches every answer to its
//! request, follows `202 Accepted` to the result, and counts every request into exactly one
//! outcome: ok, error, mismatched, timed out, lost or send failed. Scenario files add phases,
//! local processes it starts and owns, timed faults on them, and thresholds that decide the
//! exit code.
//!
//! Entry points: [`cli::main`] for the binary, [`runner::run_target`] for one scenario against
//! one target, [`generator::run`] for the load alone.

pub mod check;
pub mod cli;
pub mod client;
pub mod generator;
pub mod identity;
pub mod interrupt;
pub mod ledger;
pub mod outcome;
pub mod pool;
pub mod procs;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod selfcost;
pub mod stats;
pub mod upstream;
pub mod wire;
