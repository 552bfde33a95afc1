//! The process exit codes, one named constant each. They are part of the command-line contract
//! (README, "Exit codes"): pipelines and schedulers branch on them.

/// Done. For `advance`: also "not yet time" and "nothing to do".
pub const OK: i32 = 0;
/// An unexpected error (an AWS call failed, the emulator is down, …).
pub const UNEXPECTED: i32 = 1;
/// Bad usage or an invalid profile: nothing was changed.
pub const USAGE: i32 = 2;
/// A gate failed and traffic was rolled back to the stable side.
pub const ROLLED_BACK: i32 = 3;
/// Traffic may be split unexpectedly (a write or a rollback failed part-way): a human must look.
pub const SPLIT_UNKNOWN: i32 = 4;
/// Another run holds the rollout, or the state changed under this run.
pub const LOCKED: i32 = 5;
/// Drift: the live weights are not what they should be; refused without `--force`.
pub const DRIFT: i32 = 6;
/// Held: a gate is inconclusive, a webhook said wait, or the rollout is paused.
pub const HELD: i32 = 7;
