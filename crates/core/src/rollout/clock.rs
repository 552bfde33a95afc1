//! The run's clock: wall-clock milliseconds (leases and claims compare them across hosts),
//! advanced by tokio's clock so that the core's tests run on a paused one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds, advanced by tokio's clock: real time in a run, paused time in the
/// core's tests. Leases and claims compare these across hosts.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: tokio::time::Instant,
    base_ms: u64,
}

impl Clock {
    pub fn new() -> Clock {
        let base_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Clock { base: tokio::time::Instant::now(), base_ms }
    }

    pub fn now_ms(&self) -> u64 {
        self.base_ms.saturating_add(self.base.elapsed().as_millis() as u64)
    }

    /// The local instant of a wall-clock time (for deadlines).
    pub fn instant_of(&self, ms: u64) -> tokio::time::Instant {
        // A deadline read from a state item may lie any distance ahead: a century at most.
        let ahead = Duration::from_millis(ms.saturating_sub(self.base_ms)).min(Duration::from_secs(100 * 365 * 86_400));
        self.base.checked_add(ahead).unwrap_or(self.base)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
