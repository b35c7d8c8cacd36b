//! Load and observation helpers: a bounded concurrent event `Poster`, deadline-bound polling, and the
//! sliding-window count of an account's request log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use handoff::domain::EventId;
use handoff::sandbox::LoggedRequest;

use crate::support::{Setup, post_event};

/// What a `Poster` saw: the events answered 201, and the requests that were not.
#[derive(Debug, Default)]
pub struct Posted {
    /// (email, event id) of every 201.
    pub acked: Vec<(String, EventId)>,
    /// Requests that failed or were refused; they may or may not be stored.
    pub failed: Vec<String>,
}

/// Posts events (`page.completed`, a unique `payload.email` each) from `tasks` concurrent loops until
/// stopped, `max` were sent, or (per loop) a request was not answered 201.
pub struct Poster {
    stop: Arc<AtomicBool>,
    posted: Arc<Mutex<Posted>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Poster {
    pub fn start(
        setup: &Setup,
        api: SocketAddr,
        resource_id: &str,
        tasks: usize,
        max: usize,
    ) -> Poster {
        let stop = Arc::new(AtomicBool::new(false));
        let posted = Arc::new(Mutex::new(Posted::default()));
        let next = Arc::new(AtomicUsize::new(0));
        let handles = (0..tasks)
            .map(|_| {
                let (stop, posted, next) = (stop.clone(), posted.clone(), next.clone());
                let http = setup.http.clone();
                let key = setup.creds.publishable_key.clone();
                let resource_id = resource_id.to_owned();
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= max {
                            break;
                        }
                        let email = format!("user{i}@northstar.io");
                        let result = post_event(&http, api, &key, &resource_id, &email).await;
                        let mut p = posted.lock().unwrap();
                        match result {
                            Ok(id) => p.acked.push((email, id)),
                            Err(e) => {
                                // The node is stopping or gone: this loop ends rather than spin on
                                // refused connections.
                                p.failed.push(e);
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        Poster {
            stop,
            posted,
            tasks: handles,
        }
    }

    /// How many 201s so far.
    pub fn acked(&self) -> usize {
        self.posted.lock().unwrap().acked.len()
    }

    /// Stops posting, waits for requests in flight to end, and returns what was seen.
    pub async fn finish(self) -> Posted {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("a poster task");
        }
        std::mem::take(&mut *self.posted.lock().unwrap())
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The most requests of `log` that fall in any one-second window `[t, t + 1 s)`.
pub fn max_in_any_second(log: &[&LoggedRequest]) -> usize {
    let mut times: Vec<_> = log.iter().map(|r| r.at).collect();
    times.sort();
    let second = chrono::TimeDelta::seconds(1);
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < second)
                .count()
        })
        .max()
        .unwrap_or(0)
}
