//! Group commit for enqueue-unless-duplicate: jobs that callers submit while a round trip is in
//! flight wait for it, then go to Redis together, one script call per queue, instead of one call
//! each. Under load this divides Redis's per-call cost (script set-up, reading and answering a
//! command) and the syscalls on both sides by the batch size; an idle queue pays nothing extra,
//! because the first job finds no round trip in flight and leaves at once.
//!
//! Each job is still decided alone and atomically (its dedup check and XADD run together inside
//! the script), and a caller hears back only after Redis answered for its job. A failed round
//! trip fails every job in it: the caller cannot know whether its job was stored, which is the
//! same as any lost reply, and a provider's redelivery is then caught by the dedup key.
//!
//! The caller that finds a round trip slot free carries the round trip itself (at low load, every
//! caller): no task to spawn and wake per job. If that caller goes away mid-way (a client hanging
//! up on ingress), the rest of its round trip is spawned, so it cannot strand the other callers'
//! jobs; and once its own round trip is done, a spawned runner serves whatever waits.

use std::{collections::BTreeMap, sync::Mutex};

use tokio::sync::oneshot;

use super::{QueueError, Queues, enqueue::Enqueued, scripts};

/// Round trips in flight at once. One keeps batches largest under load; the second lets a batch
/// form while a large one is still being answered.
const MAX_IN_FLIGHT: usize = 2;
/// The most jobs in one script call, so one call never holds Redis for long.
const MAX_BATCH: usize = 128;

/// One job waiting for its round trip.
pub(crate) struct Submission {
    pub stream: String,
    pub dedup_key: String,
    pub window_ms: u64,
    pub job_id: String,
    pub json: String,
    pub reply: oneshot::Sender<Result<Enqueued, QueueError>>,
}

#[derive(Default)]
pub(crate) struct Coalescer {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    waiting: Vec<Submission>,
    in_flight: usize,
}

impl Coalescer {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves a consistent Vec and counter behind.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Queues {
    /// Queues `submission` and waits for its answer. The caller that finds a round trip slot free
    /// makes that round trip itself (no task to spawn and wake at low load); if more jobs are
    /// waiting when it is done, a spawned runner takes over, so no caller ends up serving
    /// others' jobs before answering its own request.
    pub(crate) async fn submit(
        &self,
        submission: Submission,
        answer: oneshot::Receiver<Result<Enqueued, QueueError>>,
    ) -> Result<Enqueued, QueueError> {
        let lead = {
            let mut state = self.inner.coalescer.lock();
            state.waiting.push(submission);
            let free = state.in_flight < MAX_IN_FLIGHT;
            if free {
                state.in_flight += 1;
            }
            free
        };
        if lead {
            let mut trip = Detached(Some(Box::pin(self.clone().lead_one_round_trip())));
            if let Some(round_trip) = trip.0.as_mut() {
                round_trip.await;
            }
            trip.0 = None;
        }
        answer.await.unwrap_or_else(|_| {
            Err(QueueError::Redis(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the enqueue round trip was dropped",
            ))))
        })
    }

    /// One round trip with what is waiting, then hand the slot to a runner or give it back.
    async fn lead_one_round_trip(self) {
        let runner = Runner { queues: &self };
        let more = match self.next_batch() {
            Some(batch) => {
                self.round_trip(batch).await;
                release_unless_waiting(&mut self.inner.coalescer.lock())
            }
            None => false,
        };
        std::mem::forget(runner);
        if more {
            // The runner inherits this round trip's slot.
            tokio::spawn(self.clone().run_round_trips());
        }
    }

    /// Sends what is waiting, round trip after round trip, until nothing is.
    async fn run_round_trips(self) {
        let runner = Runner { queues: &self };
        while let Some(batch) = self.next_batch() {
            self.round_trip(batch).await;
        }
        std::mem::forget(runner);
    }

    /// Up to [`MAX_BATCH`] waiting jobs; `None`, with the caller's slot given back, when none
    /// wait.
    fn next_batch(&self) -> Option<Vec<Submission>> {
        let mut state = self.inner.coalescer.lock();
        if !release_unless_waiting(&mut state) {
            return None;
        }
        let take = state.waiting.len().min(MAX_BATCH);
        Some(state.waiting.drain(..take).collect())
    }

    /// One script call per (stream, window), all on the shared connection, so they pipeline.
    async fn round_trip(&self, batch: Vec<Submission>) {
        let mut groups: BTreeMap<(String, u64), Vec<Submission>> = BTreeMap::new();
        for submission in batch {
            let key = (submission.stream.clone(), submission.window_ms);
            groups.entry(key).or_default().push(submission);
        }
        let calls = groups
            .into_iter()
            .map(|((stream, window_ms), group)| self.call_script(stream, window_ms, group));
        futures::future::join_all(calls).await;
    }

    async fn call_script(&self, stream: String, window_ms: u64, group: Vec<Submission>) {
        let mut invocation = scripts::ENQUEUE_UNIQUE.key(&stream);
        for job in &group {
            invocation.key(&job.dedup_key);
        }
        invocation.arg(window_ms);
        for job in &group {
            invocation.arg(&job.job_id).arg(&job.json);
        }
        let answer: Result<Vec<(i64, String)>, QueueError> = match self.conn().await {
            Ok(mut conn) => invocation
                .invoke_async(&mut conn)
                .await
                .map_err(QueueError::from),
            Err(error) => Err(error),
        };
        match answer {
            Ok(outcomes) if outcomes.len() == group.len() => {
                for (job, (added, value)) in group.into_iter().zip(outcomes) {
                    let outcome = if added == 1 {
                        Enqueued::New { entry_id: value }
                    } else {
                        Enqueued::Duplicate { holder: value }
                    };
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                let error = redis::RedisError::from((
                    redis::ErrorKind::Parse,
                    "enqueue script answered for a different number of jobs",
                    format!("{} answers for {} jobs", outcomes.len(), group.len()),
                ));
                fail_all(group, &QueueError::Redis(error));
            }
            Err(error) => fail_all(group, &error),
        }
    }
}

/// Whether jobs are waiting; if none are, gives a round-trip slot back. Called under the same
/// lock a submitter takes to push its job and look for a free slot, so no job is ever left
/// waiting without a round trip to carry it.
fn release_unless_waiting(state: &mut State) -> bool {
    let waiting = !state.waiting.is_empty();
    if !waiting {
        state.in_flight -= 1;
    }
    waiting
}

fn fail_all(group: Vec<Submission>, error: &QueueError) {
    for job in group {
        let _ = job.reply.send(Err(error.for_another_caller()));
    }
}

impl QueueError {
    /// The same error for another caller (a failed round trip fails every job it carried).
    fn for_another_caller(&self) -> Self {
        match self {
            Self::Redis(error) => Self::Redis(error.clone()),
            Self::Database(error) => Self::Redis(redis::RedisError::from((
                redis::ErrorKind::Io,
                "enqueue failed",
                error.to_string(),
            ))),
        }
    }
}

/// A round trip a caller drives itself. If the caller goes away mid-way (a client hanging up on
/// ingress), the rest of it is spawned, so the other jobs it carries are still answered.
struct Detached(Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>);

impl Drop for Detached {
    fn drop(&mut self) {
        if let (Some(rest), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(rest);
        }
    }
}

/// Keeps the in-flight count true if a runner is dropped mid-way (its runtime shutting down):
/// the count goes down and the jobs still waiting fail, instead of waiting for a runner that
/// will never come.
struct Runner<'a> {
    queues: &'a Queues,
}

impl Drop for Runner<'_> {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.queues.inner.coalescer.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight == 0 {
                std::mem::take(&mut state.waiting)
            } else {
                Vec::new()
            }
        };
        let error = QueueError::Redis(redis::RedisError::from((
            redis::ErrorKind::Io,
            "the task carrying this enqueue stopped (runtime shutting down)",
        )));
        fail_all(waiting, &error);
    }
}

#[cfg(test)]
mod tests;
