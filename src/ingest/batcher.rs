//! Group commit: concurrent ingest requests are gathered into one transaction and each is answered
//! when that transaction commits. No timer: whatever queued while the previous commit ran forms the
//! next batch, so an idle server commits a lone request at once and a busy one amortises each commit.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::domain::{InsertOutcome, NewEvent};
use crate::storage::{StorageError, Store};

type Reply = oneshot::Sender<Result<Vec<InsertOutcome>, Arc<StorageError>>>;

struct Job {
    events: Vec<NewEvent>,
    reply: Reply,
}

/// Submits events for group commit. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

/// The committer tasks; await `join` after every `Batcher` clone is dropped to drain the queue.
pub struct Committers {
    tasks: JoinSet<()>,
}

/// The batcher was shut down before the events could be submitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("ingest is shutting down")]
    Closed,
    #[error(transparent)]
    Storage(Arc<StorageError>),
}

impl Batcher {
    /// Starts `committers` tasks committing at most `max_batch` events per transaction.
    pub fn start(store: Arc<dyn Store>, committers: usize, max_batch: usize) -> (Self, Committers) {
        // The queue bound gives back-pressure: a request waits rather than piling memory up.
        let (tx, rx) = mpsc::channel::<Job>(max_batch * committers * 4);
        let rx = Arc::new(Mutex::new(rx));
        let mut tasks = JoinSet::new();
        for _ in 0..committers.max(1) {
            tasks.spawn(commit_loop(store.clone(), rx.clone(), max_batch.max(1)));
        }
        (Self { tx }, Committers { tasks })
    }

    /// Commits `events` (as part of some batch) and returns their outcomes in order.
    pub async fn submit(&self, events: Vec<NewEvent>) -> Result<Vec<InsertOutcome>, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { events, reply })
            .await
            .map_err(|_| SubmitError::Closed)?;
        match answer.await {
            Ok(Ok(outcomes)) => Ok(outcomes),
            Ok(Err(e)) => Err(SubmitError::Storage(e)),
            Err(_) => Err(SubmitError::Closed),
        }
    }
}

impl Committers {
    /// Waits until every queued job is committed and the tasks have stopped.
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn commit_loop(store: Arc<dyn Store>, rx: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    loop {
        let jobs = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut size = first.events.len();
            let mut jobs = vec![first];
            while size < max_batch {
                match rx.try_recv() {
                    Ok(job) => {
                        size += job.events.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        commit(&*store, jobs).await;
    }
}

async fn commit(store: &dyn Store, jobs: Vec<Job>) {
    if jobs.len() == 1 {
        let job = jobs.into_iter().next().expect("one job");
        let result = store.insert_events(&job.events).await.map_err(Arc::new);
        let _ = job.reply.send(result);
        return;
    }
    let all: Vec<NewEvent> = jobs.iter().flat_map(|j| j.events.iter().cloned()).collect();
    match store.insert_events(&all).await {
        Ok(mut outcomes) => {
            for job in jobs {
                let rest = outcomes.split_off(job.events.len());
                let mine = std::mem::replace(&mut outcomes, rest);
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            // One job's problem must not fail its neighbours: retry each alone.
            tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; committing jobs one by one");
            for job in jobs {
                let result = store.insert_events(&job.events).await.map_err(Arc::new);
                let _ = job.reply.send(result);
            }
        }
    }
}
