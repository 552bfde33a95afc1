//! cutover's core: the shared nouns ([`model`], [`weights`]), the typed errors and exit codes
//! ([`error`], [`exit`]), and the rollout itself ([`rollout`]): one state machine, the ledger that
//! is the only writer of the rollout state, the engine, the rollback protocol — behind ports that
//! the splitters, the gates and the state table implement.
//!
//! It builds without any AWS SDK crate and without clap: everything here is decided on the core's
//! own types, and the edges (in the `cutover` crate) convert into them.

#![forbid(unsafe_code)]

pub mod error;
pub mod exit;
pub mod model;
pub mod rollout;
pub mod weights;
