//! The kit's time: the real clock, or a faster one shared with the processes under test.
//!
//! CloudWatch thinks in minutes (a load balancer's 60-second buckets, published a minute or more
//! late; alarms evaluated once a minute; Route53 health checks every 30 s), and cutover judges
//! them by its own clock. A test must not wait real minutes, and must not give cutover a path of
//! its own either: so the kit's clock may run `speed` times as fast as the real one, and every
//! process that must share it (cutover) is started under libfaketime at the same speed from the
//! same instant ([`Clock::faketime_env`]). Inside such a process the real and monotonic clocks,
//! and the sleeps and timeouts of its runtime (`epoll_wait`, `nanosleep`, …), run `speed` times
//! as fast; nothing in cutover knows.

use std::time::{Duration, Instant, SystemTime};

/// The kit's clock: the real one, or one running `speed` times as fast from an origin.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// (real instant, the kit's time then, speed); `None`: the real clock.
    scaled: Option<(Instant, SystemTime, f64)>,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::real()
    }
}

/// Where libfaketime may be installed (Debian's `faketime` package puts it in the first).
const LIBFAKETIME: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
];

impl Clock {
    /// The real clock.
    pub fn real() -> Clock {
        Clock { scaled: None }
    }

    /// A clock that starts at the real time now and runs `speed` times as fast.
    pub fn scaled(speed: f64) -> Clock {
        Clock::starting(SystemTime::now(), speed)
    }

    /// A clock that reads `at` now and runs `speed` times as fast.
    pub fn starting(at: SystemTime, speed: f64) -> Clock {
        assert!(speed > 0.0, "a clock's speed is positive");
        Clock { scaled: Some((Instant::now(), at, speed)) }
    }

    /// The kit's time now.
    pub fn now(&self) -> SystemTime {
        match self.scaled {
            None => SystemTime::now(),
            Some((origin, at, speed)) => at + origin.elapsed().mul_f64(speed),
        }
    }

    /// How many times as fast as the real clock it runs.
    pub fn speed(&self) -> f64 {
        self.scaled.map(|(_, _, s)| s).unwrap_or(1.0)
    }

    /// How long `d` of the kit's time lasts in real time.
    pub fn real_time(&self, d: Duration) -> Duration {
        d.div_f64(self.speed())
    }

    /// Sleeps `d` of the kit's time.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(self.real_time(d)).await;
    }

    /// The environment that starts a process on this clock: libfaketime preloaded, the process's
    /// clocks set to this clock's time at its start and running as fast. Empty for the real
    /// clock. Computed when the process is spawned (libfaketime counts from the process's start):
    /// measured on this machine, a child reads within 0.1 s of the kit's time at ×60.
    pub fn faketime_env(&self) -> Result<Vec<(&'static str, String)>, String> {
        let Some((_, _, speed)) = self.scaled else { return Ok(Vec::new()) };
        let lib = std::env::var("CUTOVER_LIBFAKETIME")
            .ok()
            .or_else(|| LIBFAKETIME.iter().find(|p| std::path::Path::new(p).exists()).map(|p| p.to_string()))
            .ok_or("libfaketime is not installed (Debian: `apt-get install faketime`; or set CUTOVER_LIBFAKETIME)")?;
        let now_real = SystemTime::now();
        let now_kit = self.now();
        let offset = match now_kit.duration_since(now_real) {
            Ok(ahead) => ahead.as_secs_f64(),
            Err(behind) => -behind.duration().as_secs_f64(),
        };
        Ok(vec![("LD_PRELOAD", lib), ("FAKETIME", format!("{offset:+.6} x{speed}"))])
    }
}

/// The start of the minute `t` falls in.
pub fn minute_of(t: SystemTime) -> SystemTime {
    floor(t, 60)
}

/// `t` rounded down to a multiple of `secs` seconds since the epoch.
pub fn floor(t: SystemTime, secs: u64) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since - since % secs.max(1))
}

/// Seconds since the epoch.
pub fn epoch(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The time `secs` seconds after the epoch.
pub fn at_epoch(secs: i64) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}
