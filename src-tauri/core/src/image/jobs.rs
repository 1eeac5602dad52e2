//! Long image work (pull, push, commit-and-push) as jobs: each runs in the service on its own,
//! keeps its latest progress, can be cancelled, and stays listed for a while after it ends so
//! that a user who left the page sees how it went (the app's tray of jobs).
//!
//! Every change is published at most ten times a second per job, to the job's own watchers and
//! to everyone's event stream (which shows a member only their own jobs).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::progress::{Direction, TransferProgress};
use crate::gpu::now_ms;
use crate::{CoreError, ErrorPayload, Result};

/// At most this often a job's progress goes out (10 a second).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Ended jobs kept for the tray.
const KEEP_ENDED: usize = 50;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS,
)]
#[serde(rename_all = "camelCase")]
pub enum JobKind {
    Pull,
    Push,
    CommitPush,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS,
)]
#[serde(rename_all = "camelCase")]
pub enum JobState {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// What a job shows: who started it, on what, where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    #[ts(type = "number")]
    pub id: u64,
    pub kind: JobKind,
    /// The image, as typed (normalised).
    pub image: String,
    pub owner: String,
    pub uid: u32,
    pub state: JobState,
    /// The phase under way: "commit", "push" or "pull".
    pub phase: String,
    pub progress: TransferProgress,
    pub digest: Option<String>,
    pub error: Option<ErrorPayload>,
    #[ts(type = "number")]
    pub started_ms: u64,
    #[ts(type = "number | null")]
    pub ended_ms: Option<u64>,
}

impl JobView {
    pub fn ended(&self) -> bool {
        self.state != JobState::Running
    }
}

struct Job {
    view: watch::Sender<JobView>,
    cancel: watch::Sender<bool>,
}

/// The handle a job's work uses to report and to learn it was cancelled.
#[derive(Clone)]
pub struct JobHandle {
    view: watch::Sender<JobView>,
    cancel: watch::Receiver<bool>,
}

impl JobHandle {
    pub fn phase(&self, phase: &str, direction: Direction) {
        self.view.send_modify(|v| {
            v.phase = phase.to_string();
            v.progress = TransferProgress::new(direction);
        });
    }

    pub fn progress(&self, p: &TransferProgress) {
        self.view.send_modify(|v| {
            v.progress = p.clone();
            if p.digest.is_some() {
                v.digest.clone_from(&p.digest);
            }
        });
    }

    /// Resolves when the job is cancelled.
    pub async fn cancelled(&self) {
        let mut c = self.cancel.clone();
        let _ = c.wait_for(|c| *c).await;
    }
}

#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    list: Mutex<VecDeque<Arc<Job>>>,
    events: Mutex<Option<broadcast::Sender<JobView>>>,
}

impl Jobs {
    /// Everyone's job updates (throttled), for the service's event stream.
    pub fn subscribe(&self) -> broadcast::Receiver<JobView> {
        let mut g = self.events.lock().unwrap_or_else(|e| e.into_inner());
        g.get_or_insert_with(|| broadcast::channel(256).0)
            .subscribe()
    }

    fn broadcast(&self) -> broadcast::Sender<JobView> {
        let mut g = self.events.lock().unwrap_or_else(|e| e.into_inner());
        g.get_or_insert_with(|| broadcast::channel(256).0).clone()
    }

    /// Starts `work` as a job and returns its first view at once. The work ends the job with its
    /// result; cancelling drops it (which closes its engine connection, cancelling the engine's
    /// side too).
    pub fn start<F, Fut>(
        self: &Arc<Self>,
        kind: JobKind,
        image: &str,
        owner: &str,
        uid: u32,
        work: F,
    ) -> JobView
    where
        F: FnOnce(JobHandle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<String>>> + Send + 'static,
    {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let direction = match kind {
            JobKind::Pull => Direction::Pull,
            _ => Direction::Push,
        };
        let first = JobView {
            id,
            kind,
            image: image.to_string(),
            owner: owner.to_string(),
            uid,
            state: JobState::Running,
            phase: match kind {
                JobKind::Pull => "pull",
                JobKind::Push => "push",
                JobKind::CommitPush => "commit",
            }
            .into(),
            progress: TransferProgress::new(direction),
            digest: None,
            error: None,
            started_ms: now_ms(),
            ended_ms: None,
        };
        let (view, _) = watch::channel(first.clone());
        let (cancel, cancel_rx) = watch::channel(false);
        let job = Arc::new(Job { view, cancel });
        {
            let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
            l.push_back(job.clone());
            while l.len() > KEEP_ENDED {
                match l.iter().position(|j| j.view.borrow().ended()) {
                    Some(i) => {
                        l.remove(i);
                    }
                    None => break,
                }
            }
        }
        let handle = JobHandle {
            view: job.view.clone(),
            cancel: cancel_rx,
        };
        // The publisher: at most every PUBLISH_EVERY, and once more at the end.
        let tx = self.broadcast();
        let mut rx = job.view.subscribe();
        tokio::spawn(async move {
            loop {
                let v = rx.borrow_and_update().clone();
                let _ = tx.send(v.clone());
                if v.ended() {
                    break;
                }
                tokio::time::sleep(PUBLISH_EVERY).await;
                if rx.changed().await.is_err() {
                    break;
                }
            }
        });
        let j = job.clone();
        tokio::spawn(async move {
            let h = handle.clone();
            let result = tokio::select! {
                r = work(handle) => r,
                () = h.cancelled() => Err(CoreError::Cancelled(String::new())),
            };
            j.view.send_modify(|v| {
                v.ended_ms = Some(now_ms());
                match result {
                    Ok(digest) => {
                        v.state = JobState::Done;
                        if digest.is_some() {
                            v.digest = digest;
                        }
                    }
                    Err(CoreError::Cancelled(_)) => {
                        v.state = JobState::Cancelled;
                        let what = format!("{} of {}", v.phase, v.image);
                        v.error = Some(CoreError::Cancelled(what).payload());
                    }
                    Err(e) => {
                        v.state = JobState::Failed;
                        v.error = Some(e.payload());
                    }
                }
            });
        });
        first
    }

    fn find(&self, id: u64) -> Option<Arc<Job>> {
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|j| j.view.borrow().id == id)
            .cloned()
    }

    pub fn get(&self, id: u64) -> Option<JobView> {
        self.find(id).map(|j| j.view.borrow().clone())
    }

    /// Every kept job, newest first.
    pub fn list(&self) -> Vec<JobView> {
        let l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        l.iter().rev().map(|j| j.view.borrow().clone()).collect()
    }

    /// The job's views as they change, from now on.
    pub fn watch(&self, id: u64) -> Option<watch::Receiver<JobView>> {
        self.find(id).map(|j| j.view.subscribe())
    }

    /// Asks a running job to stop; false when there is none by that id.
    pub fn cancel(&self, id: u64) -> bool {
        match self.find(id) {
            Some(j) => {
                let _ = j.cancel.send(true);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_reports_ends_and_can_be_cancelled() {
        let jobs = Arc::new(Jobs::default());
        let mut all = jobs.subscribe();
        let v = jobs.start(JobKind::Pull, "img:1", "alice", 1000, |h| async move {
            let mut p = TransferProgress::new(Direction::Pull);
            p.current = 5;
            p.total = 10;
            h.progress(&p);
            Ok(Some("sha256:x".into()))
        });
        let mut w = jobs.watch(v.id).unwrap();
        let end = w.wait_for(|v| v.ended()).await.unwrap().clone();
        assert_eq!(end.state, JobState::Done);
        assert_eq!(end.digest.as_deref(), Some("sha256:x"));
        // The broadcast ends with the final view.
        let mut last = None;
        while let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(1), all.recv()).await {
            last = Some(v);
            if last.as_ref().is_some_and(|v| v.ended()) {
                break;
            }
        }
        assert_eq!(last.unwrap().state, JobState::Done);

        let v = jobs.start(JobKind::Push, "img:2", "alice", 1000, |_h| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(None)
        });
        assert!(jobs.cancel(v.id));
        let mut w = jobs.watch(v.id).unwrap();
        let end = w.wait_for(|v| v.ended()).await.unwrap().clone();
        assert_eq!(end.state, JobState::Cancelled);
        assert!(end.error.unwrap().message.contains("push of img:2"));
        assert_eq!(jobs.list().len(), 2);
        assert!(!jobs.cancel(999));
    }

    #[tokio::test]
    async fn updates_go_out_at_most_ten_a_second() {
        let jobs = Arc::new(Jobs::default());
        let mut all = jobs.subscribe();
        let v = jobs.start(JobKind::Pull, "img:1", "alice", 1000, |h| async move {
            let mut p = TransferProgress::new(Direction::Pull);
            for i in 0..2000u64 {
                p.current = i;
                h.progress(&p);
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
            Ok(None)
        });
        let t0 = std::time::Instant::now();
        let mut n = 0;
        loop {
            let e = all.recv().await.unwrap();
            assert_eq!(e.id, v.id);
            n += 1;
            if e.ended() {
                break;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        assert!(
            (n as f64) <= secs * 10.0 + 3.0,
            "{n} updates in {secs:.2} s"
        );
    }
}
